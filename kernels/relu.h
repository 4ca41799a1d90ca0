// ReLU, standalone (the linear layer also fuses it into its forward and its dx).
#pragma once

#include "core/tensor.h"
#include "kernels/gradient_mode.h"

namespace gradaccum {

// y = max(x, 0); y may not alias x. f32 or f16.
void relu_forward(const Tensor& x, Tensor& y);
// dx (mode) dy * (y > 0): the gradient is 0 at 0, as in PyTorch.
void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx, GradientMode mode);

}  // namespace gradaccum
