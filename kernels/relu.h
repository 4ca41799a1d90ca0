// ReLU, standalone (the linear layer also fuses it into its forward and its dx).
#pragma once

#include "core/tensor.h"
#include "kernels/gradient_mode.h"

namespace gradaccum {

// y = max(x, 0); y may not alias x. f32 or f16, y of x's shape and dtype, on x's device.
// NaN propagates (as torch.relu), -0 gives +0.
void relu_forward(const Tensor& x, Tensor& y);
// dx (mode) dy * (y > 0): the gradient is 0 at 0, as in PyTorch (and where y is NaN; a NaN dy
// where y <= 0 gives 0, as PyTorch's threshold_backward). dy, y, dx: one shape, dtype, device.
// An f16 Accumulate is fp16 arithmetic: dx + g rounded to half once. Ignore returns at once
// (dx may then be undefined).
void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx, GradientMode mode);

}  // namespace gradaccum
