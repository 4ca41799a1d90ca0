// The SGD update, one fused pass per parameter: PyTorch's rule for lr, momentum, dampening,
// weight decay and nesterov, with the gradient scale (true-count normalisation times the
// loss-scale unscaling) applied on the fly, read from device memory.
#pragma once

#include <vector>

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

// Arithmetic, per element, each operation rounded to f32 (no fused multiply-add), mirroring
// torch.optim.SGD's single-tensor path (foreach=False) operation for operation:
//   g = grad;  g = g + comp            (grad_comp given: Kahan's best estimate, see accumulate.h)
//              g = g * *grad_scale     (grad_scale given)
//   if weight_decay != 0:  g = g + weight_decay * p                    grad.add(p, alpha=wd)
//   if momentum != 0:      buf = first_step ? g                        clone(grad)
//                              : buf * momentum + damp * g             buf.mul_(m).add_(g, alpha)
//                          g = nesterov ? g + momentum * buf : buf     grad.add(buf, alpha=m)
//   p = p + (-lr) * g                                                  p.add_(g, alpha=-lr)
//   param_f16 = half(p) (round to nearest even), when given
// where damp = float(1 - double(dampening)) (PyTorch computes 1 - dampening in Python). The
// CPU and CUDA results are identical bit for bit. Hyper-parameters are validated as PyTorch
// does (lr, momentum, weight_decay >= 0; nesterov needs momentum > 0 and dampening 0).
struct SgdUpdateArgs {
  Tensor* param = nullptr;            // f32 master weights, updated in place
  const Tensor* grad = nullptr;       // f32 accumulated gradient (sum over the window)
  const Tensor* grad_comp = nullptr;  // optional Kahan compensation of grad: g = grad + comp
  // f32 [1] on the device: g *= *grad_scale, read on the device. Optional: null means no
  // scaling (not even a multiplication by 1).
  const Tensor* grad_scale = nullptr;
  Tensor* momentum_buf = nullptr;  // f32, required when momentum != 0 (else untouched)
  bool first_step = false;         // momentum_buf = g on the first step (PyTorch); buf is not read
  Tensor* param_f16 = nullptr;     // optional f16 model copy, refreshed in the same pass
  const NonFiniteFlag* skip_if = nullptr;  // raised: nothing is updated (skip-step policy)
};

// All tensors (and skip_if) on one device, all of param's shape; throws Error naming the
// argument and what was expected otherwise.
void sgd_update(const SgdUpdateArgs& args, const SgdHyper& hyper);
// Several parameters with one set of hyper-parameters: every update validated before any runs,
// each element exactly as the one-parameter call computes it. On CUDA one launch per eight
// parameters (one graph node for a small model's whole step); on the CPU one call each.
void sgd_update(const std::vector<SgdUpdateArgs>& updates, const SgdHyper& hyper);

}  // namespace gradaccum
