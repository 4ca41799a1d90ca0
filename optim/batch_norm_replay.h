// Window-mode BatchNorm: the big batch's step, micro-batch by micro-batch.
//
// The window keeps its micro-batches and replays them (docs/batch_norm.md): first the statistics
// passes (for each BatchNorm1d, in the order the forward reaches them, one pass for Σ x and one
// for Σ (x - mean)², the layers below it normalising with their window statistics already
// known), then the backward passes (for each BatchNorm1d from the top, one pass that collects the
// window's Σ dy and Σ dy · x̂ and stops there), then the final pass, in which every micro-batch is
// an ordinary window.backward and every layer uses the window's statistics and sums: each
// parameter's gradient is then the big batch's. Activations are recomputed, never stored.
//
//   optim::BatchNormReplay replay(window, model, loss_fn);
//   window.zero_grad();
//   for (auto& [x, y] : micro_batches) replay.submit(std::move(x), std::move(y));
//   replay.backward();                          // the passes; the window holds the gradients
//   optim::StepReport r = opt.step(window);
//
// Each layer's running statistics are updated once per window, with the window's statistics,
// as the big batch's forward would. The sums are exact (kernels/exact_sum.h), so the statistics
// do not depend on the split; in deterministic mode the whole step is bit-identical for every
// split. A micro-batch of one row is fine: the statistics are the window's (of at least 2 rows).
//
// Cost, L BatchNorm layers: 2L + L + 1 forward passes and L + 1 backward passes over the window's
// micro-batches (L = 1: 4 forwards, 2 backwards, against 1 and 1), and the kept micro-batches'
// inputs and targets in memory.
//
// Supported windows: one process (a process group's window would need each pass's sums reduced
// across the ranks: not built), the SkipStep overflow policy (dropping a micro-batch would change
// statistics already used), any normalization, compensation and loss scaling.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "autograd/batch_norm_module.h"
#include "autograd/module.h"
#include "core/tensor.h"
#include "optim/accumulation_window.h"

namespace gradaccum::optim {

class BatchNormReplay {
 public:
  using LossFn = std::function<Variable(const Variable& prediction, const Variable& target)>;

  // The model's BatchNorm1d layers are found among its descendants. Throws for a window this
  // replay does not support.
  BatchNormReplay(AccumulationWindow& window, nn::Module& model, LossFn loss);
  ~BatchNormReplay();
  BatchNormReplay(const BatchNormReplay&) = delete;
  BatchNormReplay& operator=(const BatchNormReplay&) = delete;

  // Keeps a micro-batch (x [n, in], y its targets, n >= 1) to replay at backward().
  void submit(Tensor x, Tensor y);
  // Runs the passes over the kept micro-batches and forgets them: the window then holds the
  // window's gradients (step it next), and the running statistics are updated.
  void backward();

  std::size_t micro_batches() const { return kept_.size(); }
  std::size_t batch_norm_layers() const { return layers_.size(); }
  // Forward and backward passes the last backward() ran.
  int forward_passes() const { return forward_passes_; }
  int backward_passes() const { return backward_passes_; }

 private:
  struct MicroBatch {
    Variable x;  // no gradient: replayed as they are
    Variable y;
  };
  void run_statistics_passes();
  void run_backward_passes();
  void run_final_pass();
  Variable loss_of(const MicroBatch& mb);

  AccumulationWindow& window_;
  nn::Module& model_;
  LossFn loss_;
  std::vector<nn::BatchNorm1d*> layers_;
  std::vector<MicroBatch> kept_;
  int forward_passes_ = 0;
  int backward_passes_ = 0;
};

}  // namespace gradaccum::optim
