// gradaccum-train's data: where each step's rows come from, and the held-out set.
//   synthetic   a regression task y = teacher(x): row r is a pure function of (seed, r), made
//               when a step needs it, so that nothing grows with --steps
//   --data X.npy --targets Y.npy, --dataset fashion-mnist
//               a table of rows visited in epochs (data::EpochOrder: in order or shuffled)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "autograd/nn.h"
#include "core/tensor.h"

namespace gradaccum::tools {

class TrainData {
 public:
  virtual ~TrainData() = default;
  // The training rows, or 0 for an endless synthetic task.
  virtual std::int64_t rows() const = 0;
  // x [n, in] and y [n, out] (f32, CPU) of the given rows.
  virtual void gather(const std::vector<std::int64_t>& rows, Tensor& x, Tensor& y) const = 0;
};

// Linear(in, hidden) -> ReLU -> Linear(hidden, out) named fc1, relu, fc2, initialised from the
// seed: the model the tool trains, and the synthetic task's teacher. With batch_norm, a
// BatchNorm1d named bn after fc1.
nn::Sequential make_mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, std::uint64_t seed,
                        bool batch_norm = false);

// in and out: the model's widths (the files must match them).
std::unique_ptr<TrainData> synthetic_data(std::int64_t in, std::int64_t hidden, std::int64_t out,
                                          std::uint64_t seed);
// Throws naming the flag and the file on a shape mismatch or a non-finite value; `flag` is the
// inputs' flag ("--data"), "<flag>: " and the targets' ("--targets") name them in messages.
std::unique_ptr<TrainData> npy_data(const std::string& data, const std::string& targets,
                                    std::int64_t in, std::int64_t out, const std::string& flag,
                                    const std::string& targets_flag);
// Fashion-MNIST as an autoencoder task: targets are the inputs, 784 pixels in [0, 1].
std::unique_ptr<TrainData> fashion_mnist_data(bool test_split);

// The rows of `src` (a CPU f32 table), in the given order.
Tensor gather_rows(const Tensor& src, const std::vector<std::int64_t>& rows);

// Mean absolute error of `model` over every element of a held-out set, without gradients, in
// chunks (the model's dtype and device), in evaluation mode (BatchNorm: running statistics).
double evaluate_l1(nn::Sequential& model, const TrainData& data, DType dtype, Device device);

}  // namespace gradaccum::tools
