// The training runs of gradaccum-study (the forum's questions, issue 20): the Fashion-MNIST
// autoencoder 784 -> hidden (-> BatchNorm1d) -> ReLU -> 784 with L1 loss, trained with a batch
// split into micro-batches under one of three recipes:
//   Window          gradaccum's: the window's sums divided once by the true count;
//   MicroBatchMean  the common recipe: each micro-batch's mean, the window divided by k;
//   NaiveSum        the forum's loop: loss.backward() on each micro-batch's mean, then
//                   optimizer.step() with no division at all (a k times too large gradient).
//
//   study::AutoencoderData data = study::load_autoencoder_data(60000, 10000);
//   study::RunSpec spec;  spec.split = {64, 64, 64, 64};  spec.steps = 234;
//   study::RunResult r = study::train_run(spec, data);   // losses, test L1, weight hash
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace gradaccum::study {

// Inputs that are their own targets: f32 [rows, 784] on the CPU, pixels in [0, 1].
struct AutoencoderData {
  Tensor train;
  Tensor test;
};
// The first train_rows and test_rows images of Fashion-MNIST's splits (0: all of them), from
// data::fashion_mnist_dir().
AutoencoderData load_autoencoder_data(std::int64_t train_rows, std::int64_t test_rows);

enum class Recipe { Window, MicroBatchMean, NaiveSum };
enum class BatchNormMode { None, Ghost, Window };
enum class OptimizerKind { Sgd, AdamW };
const char* recipe_name(Recipe r);
const char* batch_norm_mode_name(BatchNormMode m);
const char* optimizer_name(OptimizerKind o);

struct RunSpec {
  std::int64_t hidden = 64;
  std::int64_t batch = 256;
  // The micro-batch sizes of every step (their sum is the batch); empty: the batch in one.
  std::vector<std::int64_t> split;
  std::int64_t steps = 10;  // optimizer steps over the training rows in order, cycling
  Recipe recipe = Recipe::Window;
  BatchNormMode batch_norm = BatchNormMode::None;
  OptimizerKind optimizer = OptimizerKind::Sgd;
  double lr = 1.0;
  double momentum = 0.9;  // SGD
  double weight_decay = 0.0;
  bool deterministic = true;    // gradaccum's fixed-order kernels: equal steps give equal bytes
  std::uint64_t seed = 0;       // the initial weights
  std::int64_t eval_every = 0;  // the test L1 every N steps too (0: at the end only)
};

struct RunResult {
  std::vector<double> losses;  // each step's training loss (the batch's mean L1)
  std::vector<std::pair<std::int64_t, double>> evals;  // (step, test L1)
  double test_l1 = 0;                                  // at the end
  std::vector<float> parameters;     // every parameter, then the buffers, flattened
  std::size_t parameter_values = 0;  // how many of those are parameters (the rest: buffers)
  std::string hash;                  // 64-bit FNV-1a of those bytes, in hex
  double seconds_per_step = 0;
};

// Throws gradaccum::Error for a split that does not add up to the batch, no training rows, or a
// micro-batch of one row under ghost batch norm.
RunResult train_run(const RunSpec& spec, const AutoencoderData& data);

// The update direction the recipe's loop hands the optimizer for the first batch, at the
// initial weights (flattened parameters' gradients): Window: the sums / the window's count;
// MicroBatchMean: the sums of the micro-batch means / k; NaiveSum: the sums of the means.
std::vector<float> recipe_gradient(const RunSpec& spec, const AutoencoderData& data);

// The stability study's addends from this model: the gradients of the L1 sum of `rows`
// consecutive micro-batches of `micro_batch` training rows at the initial weights, of fc2's
// weight and bias (the layer every pixel's error reaches), flattened: rows x *entries values.
std::vector<float> micro_batch_gradients(const RunSpec& spec, const AutoencoderData& data,
                                         std::int64_t rows, std::int64_t micro_batch,
                                         std::int64_t* entries);

// The 64-bit FNV-1a hash of `bytes` bytes, 16 hex digits (the weight hashes of the report).
std::string fnv1a_hex(const void* data, std::size_t bytes);

// Relative L2 distance ||a - b|| / ||b||.
double relative_distance(const std::vector<float>& a, const std::vector<float>& b);
// How far a run's parameters (buffers left out) are from the reference's, relative to the
// reference's own move from theta0: ||a - ref|| / ||ref - theta0||.
double distance_to(const RunResult& a, const RunResult& ref, const RunResult& theta0);

}  // namespace gradaccum::study
