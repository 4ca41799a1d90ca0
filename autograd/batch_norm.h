// The BatchNorm1d op on Variables: y = x̂ · weight + bias over x [N, C], normalised with given
// statistics, with one of four backward rules (kernels/batch_norm.h has the arithmetic):
//   Batch     the statistics are this batch's own (training, PyTorch's rule): dx uses this
//             batch's Σ dy and Σ dy · x̂, and dweight += Σ dy · x̂, dbias += Σ dy;
//   Constant  the statistics are constants (evaluation mode): dx = dy · weight · invstd;
//   Window    the statistics are a window's (optim/batch_norm_replay.h): dx uses the window's
//             sums, already collected by an earlier pass; the weight and bias gradients, which
//             are those sums, are added once per pass (by the pass's first micro-batch);
//   Collect   a pass that collects the window's sums: this micro-batch's Σ dy and Σ dy · x̂ are
//             added to them exactly and nothing flows below the layer. Of several layers in
//             Collect, the first the backward reaches collects and the others write nothing
//             (their sums would be incomplete while a layer above has none yet).
// nn::BatchNorm1d (autograd/batch_norm_module.h) chooses the statistics and the rule.
#pragma once

#include <cstdint>
#include <memory>

#include "autograd/variable.h"
#include "kernels/batch_norm.h"
#include "kernels/exact_sum.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum::autograd {

// The per-channel statistics a layer normalises with (f32 [C] on the layer's device).
struct BatchNormStatistics {
  Tensor mean;
  Tensor invstd;
};

// One replay pass of a window, shared by its layers: which layer collects in it.
struct BatchNormPass {
  const void* collecting = nullptr;
};

// A layer's backward sums over a window (f32 [C] once rounded; exact while collected).
struct BatchNormWindowSums {
  BatchNormWindowSums(std::int64_t channels, Device device);
  // The sums of one batch's backward (the Batch and Constant rules): exact, then rounded.
  static BatchNormWindowSums of_batch(const Tensor& dy, const Tensor& x,
                                      const BatchNormStatistics& statistics);
  // sum_dy and sum_dy_xhat from the exact sums, each rounded once (NaN where a term was not
  // finite, so that the step is skipped).
  void round();
  ExactSum exact_dy;
  ExactSum exact_dy_xhat;
  NonFiniteFlag nonfinite;
  Tensor sum_dy;                // rounded, after the collecting pass
  Tensor sum_dy_xhat;           // rounded, after the collecting pass
  std::int64_t count = 0;       // the window's rows
  bool collected = false;       // a backward of the current pass added to the exact sums
  bool params_pending = false;  // Window rule: the weight and bias gradients are still to add
  std::shared_ptr<BatchNormPass> pass;
};

struct BatchNormBackward {
  enum class Rule { Batch, Constant, Window, Collect };
  Rule rule = Rule::Batch;
  std::shared_ptr<BatchNormWindowSums> window;  // Window and Collect
};

// weight and bias: leaves of shape [C] (both or neither: undefined Variables for no affine).
Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias,
                    std::shared_ptr<const BatchNormStatistics> statistics,
                    const BatchNormBackward& backward);

}  // namespace gradaccum::autograd
