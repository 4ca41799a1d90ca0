// L1 loss. The forward accumulates the *sum* of |pred - target| into an f32 scalar; the
// reduction (sum or mean, and over which count) is applied by the caller, once per window.
#pragma once

#include "core/tensor.h"
#include "kernels/gradient_mode.h"

namespace gradaccum {

enum class Reduction { Sum, Mean };
inline const char* reduction_name(Reduction r) { return r == Reduction::Sum ? "sum" : "mean"; }

// loss_sum[1] (f32) (mode) Σ |pred - target|, summed in fp32 or wider even for f16 inputs, as
// one chain in sample (row) order so that the sum does not depend on the micro-batch split.
void l1_loss_forward(const Tensor& pred, const Tensor& target, Tensor& loss_sum,
                     GradientMode mode);

// dpred (mode) sign(pred - target) * factor * (*scale if scale given), 0 at equality.
// factor is the reduction's factor as seen by this call (1 for a sum; 1/count for a mean
// normalised here); scale is an optional f32 [1] on the device (e.g. the loss scale), read
// on the device so a captured graph serves any value.
void l1_loss_backward(const Tensor& pred, const Tensor& target, float factor,
                      const Tensor* scale, Tensor& dpred, GradientMode mode);

}  // namespace gradaccum
