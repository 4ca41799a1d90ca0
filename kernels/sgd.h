// The SGD update, one fused pass per parameter: PyTorch's rule for lr, momentum, dampening,
// weight decay and nesterov, with the gradient scale (true-count normalisation times the
// loss-scale unscaling) applied on the fly, read from device memory.
#pragma once

#include "core/tensor.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum {

struct SgdHyper {
  float lr = 0.01f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

struct SgdUpdateArgs {
  Tensor* param = nullptr;             // f32 master weights, updated in place
  const Tensor* grad = nullptr;        // f32 accumulated gradient (sum over the window)
  const Tensor* grad_comp = nullptr;   // optional Kahan compensation of grad: g = grad + comp
  const Tensor* grad_scale = nullptr;  // f32 [1] on the device: g *= *grad_scale
  Tensor* momentum_buf = nullptr;      // f32, required when momentum != 0
  bool first_step = false;             // momentum_buf = g on the first step (PyTorch)
  Tensor* param_f16 = nullptr;         // optional f16 model copy, refreshed in the same pass
  const NonFiniteFlag* skip_if = nullptr;  // raised: nothing is updated (skip-step policy)
};

void sgd_update(const SgdUpdateArgs& args, const SgdHyper& hyper);

}  // namespace gradaccum
