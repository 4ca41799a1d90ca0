// BatchNorm1d over features x[N, C] (PyTorch's semantics), in kernels that the autograd op
// (autograd/batch_norm.cpp) and the window's replayed passes (optim/batch_norm_replay.h) share.
//
// Every reduction over rows is an exact sum (kernels/exact_sum.h: fixed-point, no rounding), so
// the statistics and the backward's sums do not depend on the order of the rows, on how they
// are split into micro-batches, or on the device: the window's statistics are the big batch's,
// bit for bit, whatever the split. Each is rounded once to f32 when read.
//
// Arithmetic (CPU and CUDA identical bit for bit: every operation rounded to f32, no fused
// multiply-add), with the statistics and sums f32 and x, y, dy, dx in the model dtype (f32 or
// f16, widened exactly to f32 and rounded once back):
//   mean    = f32(Σ x) / count
//   var     = f32(Σ d·d) / count,  d = x - mean             (biased: PyTorch's normalisation)
//   invstd  = 1 / sqrt(var + eps)
//   x̂       = (x - mean) · invstd
//   y       = x̂ · weight + bias                             (affine; y = x̂ without)
//   dx      = (dy - Σdy / count - x̂ · Σ(dy·x̂) / count) · (weight · invstd)
//             or, with constant statistics (evaluation mode), dy · (weight · invstd)
//   running_mean = (1 - momentum) · running_mean + momentum · mean
//   running_var  = (1 - momentum) · running_var + momentum · var · count / (count - 1)
// Non-finite terms are never added to an exact sum; they raise the `nonfinite` flag instead,
// and a statistic computed under a raised flag is NaN (as PyTorch's would be).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/exact_sum.h"
#include "kernels/gradient_mode.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum {

// What batch_norm_sum_rows adds, per channel c, over the rows n.
enum class BatchNormRowSum {
  Values,             // Σ x[n, c]
  SquaredDeviations,  // Σ (x[n, c] - mean[c])²   (mean given)
};

// sum[c] += the row sum of x [N, C] (f32 or f16) exactly; sum is an ExactSum of shape [C] on
// x's device, mean an f32 [C] there (SquaredDeviations only).
void batch_norm_sum_rows(const Tensor& x, const Tensor* mean, BatchNormRowSum what, ExactSum& sum,
                         NonFiniteFlag* nonfinite);

// The backward's two sums: sum_dy[c] += Σ dy[n, c] and sum_dy_xhat[c] += Σ dy[n, c] · x̂[n, c].
void batch_norm_sum_backward(const Tensor& dy, const Tensor& x, const Tensor& mean,
                             const Tensor& invstd, ExactSum& sum_dy, ExactSum& sum_dy_xhat,
                             NonFiniteFlag* nonfinite);

// mean (f32 [C]) = f32(sum_x) / count; NaN where `nonfinite` is raised. count >= 1.
void batch_norm_mean(const ExactSum& sum_x, std::int64_t count, const NonFiniteFlag* nonfinite,
                     Tensor& mean);
// var (biased) and invstd (f32 [C]) from the exact Σ (x - mean)²; NaN where `nonfinite` is
// raised. count >= 1, eps >= 0.
void batch_norm_variance(const ExactSum& sum_sq, std::int64_t count, float eps,
                         const NonFiniteFlag* nonfinite, Tensor& var, Tensor& invstd);
// invstd = 1 / sqrt(var + eps) (evaluation mode: var is the running variance).
void batch_norm_invstd(const Tensor& var, float eps, Tensor& invstd);
// The running statistics' update, once per batch the layer normalised with (mean, var biased,
// over count >= 2 rows): PyTorch's momentum rule, the running variance unbiased.
void batch_norm_update_running(Tensor& running_mean, Tensor& running_var, const Tensor& mean,
                               const Tensor& var, std::int64_t count, float momentum);

// y = x̂ · weight + bias (weight and bias f32 [C], both or neither); y of x's shape and dtype.
void batch_norm_forward(const Tensor& x, const Tensor& mean, const Tensor& invstd,
                        const Tensor* weight, const Tensor* bias, Tensor& y);

// The sums of the backward (f32 [C], rounded) over `count` rows, or none for constant
// statistics.
struct BatchNormBackwardSums {
  const Tensor* sum_dy = nullptr;
  const Tensor* sum_dy_xhat = nullptr;
  std::int64_t count = 0;
};
// dx (mode: Overwrite, or Accumulate adding in f32 and rounding once) of x's shape and dtype.
void batch_norm_backward_input(const Tensor& dy, const Tensor& x, const Tensor& mean,
                               const Tensor& invstd, const Tensor* weight,
                               const BatchNormBackwardSums& sums, Tensor& dx, GradientMode mode);

}  // namespace gradaccum
