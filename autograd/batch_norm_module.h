// nn::BatchNorm1d(C): PyTorch's BatchNorm1d over features [N, C]. Training mode normalises with
// the batch's mean and biased variance and updates the running statistics (momentum rule, the
// running variance unbiased); evaluation mode normalises with the running statistics. Affine
// weight (ones) and bias (zeros) are parameters; running_mean and running_var are f32 buffers.
//
// Under accumulation each micro-batch is a batch to this layer (ghost batch norm, what every
// framework does). optim::BatchNormReplay instead replays a window's micro-batches so that the
// layer normalises with the window's statistics and updates its running statistics once per
// window: the big batch's step (docs/batch_norm.md).
#pragma once

#include <cstdint>
#include <memory>

#include "autograd/batch_norm.h"
#include "autograd/module.h"
#include "kernels/exact_sum.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum::nn {

struct BatchNormOptions {
  explicit BatchNormOptions(std::int64_t num_features) : num_features_(num_features) {}
  BatchNormOptions& eps(double v) {
    eps_ = v;
    return *this;
  }
  BatchNormOptions& momentum(double v) {
    momentum_ = v;
    return *this;
  }
  BatchNormOptions& affine(bool v) {
    affine_ = v;
    return *this;
  }
  std::int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  bool affine() const { return affine_; }

 private:
  std::int64_t num_features_;
  double eps_ = 1e-5;
  double momentum_ = 0.1;
  bool affine_ = true;
};

// A window replay's state of one layer (optim::BatchNormReplay drives it; see there).
struct BatchNormReplayState {
  enum class Pass { Statistics, Backward };
  enum class Stage { Mean, Variance, Known };
  // Which layer adds to its statistics in the current statistics pass (the first the forward
  // reaches whose statistics are not known yet).
  struct StatisticsPass {
    const BatchNormReplayState* collecting = nullptr;
  };
  BatchNormReplayState(std::int64_t channels, Device device);

  Pass pass = Pass::Statistics;
  Stage stage = Stage::Mean;
  std::shared_ptr<StatisticsPass> statistics_pass;
  ExactSum exact;  // Σ x (Mean), then Σ (x - mean)² (Variance)
  NonFiniteFlag nonfinite;
  std::int64_t rows = 0;  // rows added in the current statistics pass
  std::shared_ptr<autograd::BatchNormStatistics> statistics;
  Tensor var;  // biased, f32 [C]
  std::shared_ptr<autograd::BatchNormWindowSums> sums;
  bool sums_known = false;
};

class BatchNorm1d : public Module {
 public:
  explicit BatchNorm1d(const BatchNormOptions& options);
  explicit BatchNorm1d(std::int64_t num_features) : BatchNorm1d(BatchNormOptions(num_features)) {}

  Variable forward(const Variable& x) override;
  std::string type_name() const override { return "BatchNorm1d"; }

  const BatchNormOptions& options() const { return options_; }
  const Variable& weight() const { return weight_; }  // undefined without affine
  const Variable& bias() const { return bias_; }
  const Tensor& running_mean() const { return *running_mean_; }
  const Tensor& running_var() const { return *running_var_; }

  // ---- for optim::BatchNormReplay ----
  // Starts (or, with null, ends) a window replay of this layer.
  void set_replay(std::shared_ptr<BatchNormReplayState> state) { replay_ = std::move(state); }
  BatchNormReplayState* replay() const { return replay_.get(); }
  // After a statistics pass that collected here: the mean, or the variance (then the statistics
  // are known, and the running statistics take them, once).
  void finish_statistics_stage();

 private:
  void check_input(const Variable& x) const;
  Variable forward_replayed(const Variable& x);

  BatchNormOptions options_;
  Variable weight_;
  Variable bias_;
  Tensor* running_mean_ = nullptr;
  Tensor* running_var_ = nullptr;
  std::shared_ptr<BatchNormReplayState> replay_;
};

}  // namespace gradaccum::nn
