// The differentiable ops. Each records its backward rule on the tape when an input requires a
// gradient (and recording is on); all inputs of one op must share one device and one dtype
// (the model's: f32 or f16), else gradaccum::Error.
#pragma once

#include "autograd/variable.h"
#include "kernels/gemm_config.h"
#include "kernels/l1_loss.h"

namespace gradaccum::autograd {

// y[N, out] = x[N, in] · w[out, in]ᵀ + b[out] (b optional: pass an undefined Variable), then
// ReLU when fuse_relu (one kernel forward; the ReLU mask applied in the backward).
// w and b must be leaves (parameters).
Variable linear(const Variable& x, const Variable& w, const Variable& b, bool fuse_relu = false,
                const GemmConfig& config = {});

// y = max(x, 0); the gradient is 0 at 0, as in PyTorch.
Variable relu(const Variable& x);

// L1 loss: the sum or mean of |pred - target| over all elements (PyTorch's count for the mean:
// every element). The result is a one-element f32 Variable carrying LossInfo.
Variable l1_loss(const Variable& pred, const Variable& target, Reduction reduction);

}  // namespace gradaccum::autograd
