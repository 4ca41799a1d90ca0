// The fused AdamW update on the device: one vectorised grid-stride pass over each parameter, one
// launch per parameter or per eight of them. The arithmetic is the CPU's (kernels/adamw.cpp),
// operation for operation, every operation an explicitly rounded intrinsic (and the build uses
// -fmad=false besides), so CUDA and CPU agree bit for bit.
#include "kernels/adamw.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/optimizer_update_kernels.cuh"

namespace gradaccum::cuda {
namespace {

using ew::kPack;
using ew::Pack;

// The state of one element: the moments and the running max of the second (amsgrad).
struct Moments {
  float m;
  float v;
  float vmax;
};

// One element of PyTorch's AdamW step (torch.optim.AdamW, single-tensor path), each operation
// rounded to f32: g = (grad + comp) * scale; p = p * decay; m = m * beta1 + omb1 * g;
// v = v * beta2 + (omb2 * g) * g; s = amsgrad ? vmax = maximum(vmax, v) : v;
// p = p + (neg_step_size * m) / (sqrt(s) / bc2_sqrt + eps).
__device__ __forceinline__ void adamw_element(float& p, Moments& st, float grad,
                                              const float* comp_elem, float comp, float scale,
                                              bool scaled, const AdamwKernelHyper& h) {
  float g = grad;
  if (comp_elem != nullptr) g = __fadd_rn(g, comp);
  if (scaled) g = __fmul_rn(g, scale);
  p = __fmul_rn(p, h.decay);
  st.m = __fadd_rn(__fmul_rn(st.m, h.beta1), __fmul_rn(h.one_minus_beta1, g));
  st.v = __fadd_rn(__fmul_rn(st.v, h.beta2), __fmul_rn(__fmul_rn(h.one_minus_beta2, g), g));
  float s = st.v;
  if (h.amsgrad) {
    // torch.maximum: NaN when either is NaN (fmaxf would drop it).
    st.vmax = (st.vmax > st.v || st.vmax != st.vmax) ? st.vmax : st.v;
    s = st.vmax;
  }
  const float d = __fadd_rn(__fdiv_rn(__fsqrt_rn(s), h.bc2_sqrt), h.eps);
  p = __fadd_rn(p, __fdiv_rn(__fmul_rn(h.neg_step_size, st.m), d));
}

struct AdamwOp {
  using Pointers = AdamwPointers;
  using Hyper = AdamwKernelHyper;

  // The elements of one parameter this thread owns: packs first, first + stride, ..., then the
  // tail. Shared by the one-tensor and the several-tensor kernels.
  static __device__ __forceinline__ void range(const AdamwPointers& a, const AdamwKernelHyper& h,
                                               bool vec, std::int64_t first, std::int64_t stride) {
    const bool scaled = a.grad_scale != nullptr;
    const float scale = scaled ? *a.grad_scale : 1.0f;
    const std::int64_t packs = vec ? a.n / kPack : 0;
    for (std::int64_t i = first; i < packs; i += stride) {
      Pack<float> p = ew::load_pack(static_cast<const float*>(a.param), i);
      const Pack<float> g = ew::load_pack(a.grad, i);
      const Pack<float> c = a.grad_comp != nullptr ? ew::load_pack(a.grad_comp, i) : Pack<float>{};
      Pack<float> m = ew::load_pack(static_cast<const float*>(a.exp_avg), i);
      Pack<float> v = ew::load_pack(static_cast<const float*>(a.exp_avg_sq), i);
      Pack<float> vmax =
          h.amsgrad ? ew::load_pack(static_cast<const float*>(a.max_exp_avg_sq), i) : Pack<float>{};
#pragma unroll
      for (int k = 0; k < kPack; ++k) {
        Moments st{m.v[k], v.v[k], vmax.v[k]};
        adamw_element(p.v[k], st, g.v[k], a.grad_comp, c.v[k], scale, scaled, h);
        m.v[k] = st.m;
        v.v[k] = st.v;
        vmax.v[k] = st.vmax;
      }
      ew::store_pack(a.param, i, p);
      ew::store_pack(a.exp_avg, i, m);
      ew::store_pack(a.exp_avg_sq, i, v);
      if (h.amsgrad) ew::store_pack(a.max_exp_avg_sq, i, vmax);
      ew::store_f16_copy(a.param_f16, i, p);
    }
    for (std::int64_t i = packs * kPack + first; i < a.n; i += stride) {
      float p = a.param[i];
      Moments st{a.exp_avg[i], a.exp_avg_sq[i], h.amsgrad ? a.max_exp_avg_sq[i] : 0.0f};
      const float c = a.grad_comp != nullptr ? a.grad_comp[i] : 0.0f;
      adamw_element(p, st, a.grad[i], a.grad_comp, c, scale, scaled, h);
      a.param[i] = p;
      a.exp_avg[i] = st.m;
      a.exp_avg_sq[i] = st.v;
      if (h.amsgrad) a.max_exp_avg_sq[i] = st.vmax;
      if (a.param_f16 != nullptr) ew::as_half(a.param_f16)[i] = __float2half_rn(p);
    }
  }

  static bool vectorisable(const AdamwPointers& p) {
    return ew::update_pointers_aligned16(p) && ew::aligned16(p.exp_avg) &&
           ew::aligned16(p.exp_avg_sq) && ew::aligned16(p.max_exp_avg_sq);
  }
};

}  // namespace

void adamw_update(const AdamwPointers& ptrs, const AdamwKernelHyper& hyper) {
  ew::launch_update<AdamwOp>(ptrs, hyper);
}

void adamw_update_multi(const AdamwPointers* ptrs, int count, const AdamwKernelHyper& hyper) {
  ew::launch_update_multi<AdamwOp>(ptrs, count, hyper);
}

}  // namespace gradaccum::cuda
