// The AdamW update, one fused pass per parameter: PyTorch's rule (torch.optim.AdamW: decoupled
// weight decay, bias-corrected moments, optional AMSGrad), with the gradient scale (true-count
// normalisation times the loss-scale unscaling) applied on the fly, read from device memory.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum {

// The hyper-parameters are doubles, as PyTorch's are (Python floats): the scalars the update
// uses are computed from them in double, as PyTorch's Python code does, then rounded to f32.
struct AdamwHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  // The number of this step, from 1: PyTorch's state['step'] after its `step_t += 1`. The bias
  // corrections come from it (the optimizer counts; the kernel holds no step state).
  std::int64_t step = 1;
};

// Arithmetic, per element, each operation rounded to f32 (no fused multiply-add), mirroring
// torch.optim.AdamW's single-tensor path (_single_tensor_adamw: foreach=False, maximize=False,
// capturable=False) operation for operation:
//   g = grad;  g = g + comp            (grad_comp given: Kahan's best estimate, see accumulate.h)
//              g = g * *grad_scale     (grad_scale given)
//   p = p * decay                                    param.mul_(1 - lr * weight_decay)
//   m = m * beta1;  m = m + omb1 * g                 exp_avg.mul_(beta1).add_(g, alpha=1-beta1)
//   v = v * beta2;  v = v + (omb2 * g) * g           exp_avg_sq.mul_(beta2)
//                                                        .addcmul_(g, g, value=1-beta2)
//   if amsgrad:  vmax = maximum(vmax, v) (NaN wins); s = vmax    torch.maximum(..., out=vmax)
//   else:        s = v
//   d = sqrt(s);  d = d / bc2_sqrt;  d = d + eps     (s.sqrt() / bc2_sqrt).add_(eps)
//   p = p + (neg_step_size * m) / d                  param.addcdiv_(m, d, value=-step_size)
//   param_f16 = half(p) (round to nearest even), when given
// with the scalars PyTorch computes in Python (double) and its CPU kernels cast to float:
//   decay = float(1 - lr * weight_decay), beta1 = float(beta1), omb1 = float(1 - beta1),
//   beta2 = float(beta2), omb2 = float(1 - beta2), eps = float(eps),
//   neg_step_size = float(-(lr / (1 - pow(beta1, step)))),
//   bc2_sqrt = float(sqrt(1 - pow(beta2, step))).
// The orders are those of ATen's CPU kernels: addcmul_ computes self + value * t1 * t2 left to
// right, addcdiv_ self + value * t1 / t2 left to right, a tensor divided by a Python float
// divides by the float (no reciprocal). PyTorch's AVX2/AVX512 kernels fuse add_(alpha) and
// addcmul_ into FMAs (one rounding where this rule has two, up to an ulp apart in m and v); its
// DEFAULT kernels (ATEN_CPU_CAPABILITY=default) round every operation, and this update equals
// them bit for bit (tests/data/torch_adamw/update_*, scripts/make_torch_adamw_fixtures.py).
// The CPU and CUDA results are identical bit for bit. Hyper-parameters are validated as PyTorch
// does (0 <= lr, 0 <= eps, 0 <= beta1, beta2 < 1, 0 <= weight_decay; finite), and step >= 1.
struct AdamwUpdateArgs {
  Tensor* param = nullptr;            // f32 master weights, updated in place
  const Tensor* grad = nullptr;       // f32 accumulated gradient (sum over the window)
  const Tensor* grad_comp = nullptr;  // optional Kahan compensation of grad: g = grad + comp
  // f32 [1] on the device: g *= *grad_scale, read on the device. Optional: null means no
  // scaling (not even a multiplication by 1).
  const Tensor* grad_scale = nullptr;
  Tensor* exp_avg = nullptr;         // f32 first moment m, required (zeros before step 1)
  Tensor* exp_avg_sq = nullptr;      // f32 second moment v, required (zeros before step 1)
  Tensor* max_exp_avg_sq = nullptr;  // f32 running max of v, required with amsgrad (else untouched)
  Tensor* param_f16 = nullptr;       // optional f16 model copy, refreshed in the same pass
  const NonFiniteFlag* skip_if = nullptr;  // raised: nothing is updated (skip-step policy)
};

// All tensors (and skip_if) on one device, all of param's shape; throws Error naming the
// argument and what was expected otherwise.
void adamw_update(const AdamwUpdateArgs& args, const AdamwHyper& hyper);
// Several parameters with one set of hyper-parameters: every update validated before any runs,
// each element exactly as the one-parameter call computes it. On CUDA one launch per eight
// parameters (one graph node for a small model's whole step); on the CPU one call each.
void adamw_update(const std::vector<AdamwUpdateArgs>& updates, const AdamwHyper& hyper);

}  // namespace gradaccum
