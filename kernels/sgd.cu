// The fused SGD update on the device: one vectorised grid-stride pass over each parameter, one
// launch per parameter or per eight of them. The
// arithmetic is the CPU's (kernels/sgd.cpp), operation for operation, with no fused
// multiply-adds (the build uses -fmad=false), so CUDA and CPU agree bit for bit.
#include "kernels/elementwise.cuh"
#include "kernels/optimizer_update_kernels.cuh"
#include "kernels/sgd.cuh"

namespace gradaccum::cuda {
namespace {

using ew::kPack;
using ew::Pack;

// One element of PyTorch's SGD step (torch.optim.SGD, single-tensor path), each operation
// rounded to f32: g = (grad + comp) * scale; g = g + wd * p; buf = momentum * buf + alpha * g
// (or g on the first step); g = nesterov ? g + momentum * buf : buf; p = p + (-lr) * g.
__device__ __forceinline__ void sgd_element(float& p, float grad, const float* comp_elem,
                                            float comp, float scale, bool scaled, float& buf,
                                            bool first_step, const SgdKernelHyper& h) {
  float g = grad;
  if (comp_elem != nullptr) g = g + comp;
  if (scaled) g = g * scale;
  if (h.weight_decay != 0.0f) g = g + h.weight_decay * p;
  if (h.momentum != 0.0f) {
    if (first_step) {
      buf = g;
    } else {
      buf = buf * h.momentum;
      buf = buf + h.damp_alpha * g;
    }
    g = h.nesterov ? g + h.momentum * buf : buf;
  }
  p = p + h.neg_lr * g;
}

// The elements of one parameter this thread owns: packs first, first + stride, ..., then the
// tail. Shared by the one-tensor and the several-tensor kernels.
__device__ __forceinline__ void sgd_range(const SgdPointers& a, const SgdKernelHyper& h, bool vec,
                                          std::int64_t first, std::int64_t stride) {
  const bool scaled = a.grad_scale != nullptr;
  const float scale = scaled ? *a.grad_scale : 1.0f;
  const bool momentum = h.momentum != 0.0f;
  const std::int64_t packs = vec ? a.n / kPack : 0;
  for (std::int64_t i = first; i < packs; i += stride) {
    Pack<float> p = ew::load_pack(static_cast<const float*>(a.param), i);
    const Pack<float> g = ew::load_pack(a.grad, i);
    const Pack<float> c = a.grad_comp != nullptr ? ew::load_pack(a.grad_comp, i) : Pack<float>{};
    Pack<float> b = momentum && !a.first_step
                        ? ew::load_pack(static_cast<const float*>(a.momentum_buf), i)
                        : Pack<float>{};
#pragma unroll
    for (int k = 0; k < kPack; ++k) {
      sgd_element(p.v[k], g.v[k], a.grad_comp, c.v[k], scale, scaled, b.v[k], a.first_step, h);
    }
    ew::store_pack(a.param, i, p);
    if (momentum) ew::store_pack(a.momentum_buf, i, b);
    ew::store_f16_copy(a.param_f16, i, p);
  }
  for (std::int64_t i = packs * kPack + first; i < a.n; i += stride) {
    float p = a.param[i];
    float b = momentum && !a.first_step ? a.momentum_buf[i] : 0.0f;
    const float c = a.grad_comp != nullptr ? a.grad_comp[i] : 0.0f;
    sgd_element(p, a.grad[i], a.grad_comp, c, scale, scaled, b, a.first_step, h);
    a.param[i] = p;
    if (momentum) a.momentum_buf[i] = b;
    if (a.param_f16 != nullptr) ew::as_half(a.param_f16)[i] = __float2half_rn(p);
  }
}

struct SgdOp {
  using Pointers = SgdPointers;
  using Hyper = SgdKernelHyper;
  static __device__ __forceinline__ void range(const SgdPointers& a, const SgdKernelHyper& h,
                                               bool vec, std::int64_t first, std::int64_t stride) {
    sgd_range(a, h, vec, first, stride);
  }
  static bool vectorisable(const SgdPointers& p) {
    return ew::update_pointers_aligned16(p) && ew::aligned16(p.momentum_buf);
  }
};

}  // namespace

void sgd_update(const SgdPointers& ptrs, const SgdKernelHyper& hyper) {
  ew::launch_update<SgdOp>(ptrs, hyper);
}

void sgd_update_multi(const SgdPointers* ptrs, int count, const SgdKernelHyper& hyper) {
  ew::launch_update_multi<SgdOp>(ptrs, count, hyper);
}

}  // namespace gradaccum::cuda
