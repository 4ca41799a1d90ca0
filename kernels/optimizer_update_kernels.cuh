// The kernels and launchers every fused optimizer update (SGD, AdamW) shares around its own
// per-thread work: one grid-stride launch per parameter, or one launch per eight parameters
// (ew::launch_in_groups), a raised skip_if flag ending each block at once. Include from .cu files
// only; private to kernels/.
//
// An update is a struct Op with
//   using Pointers = ...;  // derived from UpdatePointers (kernels/optimizer_update.cuh)
//   using Hyper = ...;     // the scalars the kernel uses
//   static __device__ void range(const Pointers&, const Hyper&, bool vec, std::int64_t first,
//                                std::int64_t stride);  // this thread's elements of a parameter
//   static bool vectorisable(const Pointers&);  // every pointer 16-byte aligned
#pragma once

#include <cstdint>

#include "core/launch.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/optimizer_update.cuh"

namespace gradaccum::cuda::ew {

// The pointers every update has, 16-byte aligned (or null).
inline bool update_pointers_aligned16(const UpdatePointers& p) {
  return aligned16(p.param) && aligned16(p.grad) && aligned16(p.grad_comp) &&
         aligned16(p.param_f16);
}

// The f16 model copy of a pack of updated f32 weights (round to nearest even), when wanted.
__device__ __forceinline__ void store_f16_copy(std::uint16_t* f16, std::int64_t pack,
                                               const Pack<float>& p) {
  if (f16 == nullptr) return;
  Pack<__half> q;
#pragma unroll
  for (int k = 0; k < kPack; ++k)
    q.v[k] = __float2half_rn(p.v[k]);
  store_pack(as_half(f16), pack, q);
}

template <typename Op>
__global__ void update_kernel(typename Op::Pointers a, typename Op::Hyper h, bool vec) {
  if (skipped(a.skip_if)) return;
  Op::range(a, h, vec, global_thread(), grid_threads());
}

template <typename Pointers>
struct MultiUpdateArgs {
  Segments sg;
  Pointers t[kMaxSegments];
};

template <typename Op>
__global__ void update_multi_kernel(MultiUpdateArgs<typename Op::Pointers> a,
                                    typename Op::Hyper h) {
  std::int64_t first = 0, stride = 0;
  const int i = segment_of(a.sg, first, stride);
  if (skipped(a.t[i].skip_if)) return;
  Op::range(a.t[i], h, a.sg.vec[i], first, stride);
}

template <typename Op>
void launch_update(const typename Op::Pointers& ptrs, const typename Op::Hyper& hyper) {
  if (ptrs.n == 0) return;
  GA_LAUNCH(update_kernel<Op>, grid_for_elements(ptrs.n), dim3(kBlock), 0,
            ::gradaccum::current_stream(), ptrs, hyper, Op::vectorisable(ptrs));
}

// Several parameters, one launch per eight; each element exactly as launch_update computes it.
template <typename Op>
void launch_update_multi(const typename Op::Pointers* ptrs, int count,
                         const typename Op::Hyper& hyper) {
  using Args = MultiUpdateArgs<typename Op::Pointers>;
  launch_in_groups<Args>(
      count,
      [&](Args& a, int j) {
        if (ptrs[j].n == 0) return;
        a.t[a.sg.count] = ptrs[j];
        add_segment(a.sg, ptrs[j].n, Op::vectorisable(ptrs[j]));
      },
      [&](const Args& a, dim3 grid) {
        GA_LAUNCH(update_multi_kernel<Op>, grid, dim3(kBlock), 0, ::gradaccum::current_stream(), a,
                  hyper);
      });
}

}  // namespace gradaccum::cuda::ew
