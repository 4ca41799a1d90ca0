// L1 loss. The forward accumulates the *sum* of |pred - target| into an f32 scalar; the
// reduction (sum or mean, and over which count) is applied by the caller, once per window.
#pragma once

#include "core/tensor.h"
#include "kernels/gradient_mode.h"
#include "kernels/window_scalars.h"

namespace gradaccum {

enum class Reduction { Sum, Mean };
inline const char* reduction_name(Reduction r) {
  return r == Reduction::Sum ? "sum" : "mean";
}

// loss_sum[1] (f32) (mode) Σ |pred - target|, summed in fp32 or wider even for f16 inputs, as
// one chain in sample (row) order so that the sum does not depend on the micro-batch split.
// The exact algorithm, the same on the CPU and CUDA (bit-identical results):
//   rows = pred.size(0) (a rank-0 tensor is one row), cols = the other dimensions' product;
//   row_sum[r] = 0; for c in order: row_sum[r] = f32(row_sum[r] + |f32(p[r,c]) - f32(t[r,c])|)
//   acc = (Accumulate ? *loss_sum : 0); for r in order: acc = f32(acc + row_sum[r]);
//   *loss_sum = acc.
// So Overwrite on rows [0, k) then Accumulate on rows [k, n) gives exactly the full-batch sum.
// Ignore does nothing. pred and target: same shape and dtype (f32 or f16); all on one device.
// On CUDA one block computes the row sums, 256 rows at a time, and one thread chains them:
// meant for losses over a batch of outputs, not for huge tensors.
//
// Extras, all optional, done by the same launch (a captured micro-step then has fewer nodes):
//   compensation (f32 [1]): the chain over the rows is Kahan-compensated, with this running
//     compensation (read when accumulating, then written; the sum is ~ *loss_sum + *compensation,
//     kernels/accumulate.h's convention): per row y = row_sum + comp; t = acc + y;
//     comp = y - (t - acc); acc = t. Still one chain in row order (split-invariant when the
//     compensation is carried from call to call), and no longer stagnating when the sum dwarfs
//     a row's share: the accumulation window's loss.
//   Once *loss_sum is stored, by the chaining thread, with the arithmetic of the separate calls:
//   reduced (f32 [1]): = f32(double(*loss_sum) * reduced_factor), scale_scalar's rounding: the
//     loss value of the reduction;
//   count: window_count_micro_batch(*count->counts, nullptr, count->samples, ...).
struct L1ForwardExtras {
  Tensor* compensation = nullptr;
  Tensor* reduced = nullptr;
  double reduced_factor = 1.0;
  const WindowCountArgs* count = nullptr;
};
void l1_loss_forward(const Tensor& pred, const Tensor& target, Tensor& loss_sum, GradientMode mode,
                     const L1ForwardExtras& extras = {});

// dpred (mode) sign(pred - target) * factor * (*scale if scale given), 0 at equality.
// factor is the reduction's factor as seen by this call (1 for a sum; 1/count for a mean
// normalised here); scale is an optional f32 [1] on the device (e.g. the loss scale), read
// on the device so a captured graph serves any value.
// Per element: coef = f32(factor * *scale) (or factor), g = +coef, -coef or 0 (pred == target),
// NaN if pred or target is NaN; dpred = g or, Accumulate, f32(dpred + g); an f16 dpred gets
// that f32 value rounded to half once. dpred has pred's dtype and shape. Ignore does nothing.
void l1_loss_backward(const Tensor& pred, const Tensor& target, float factor, const Tensor* scale,
                      Tensor& dpred, GradientMode mode);

}  // namespace gradaccum
