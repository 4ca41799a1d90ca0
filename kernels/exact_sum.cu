// Exact sums on the device: one thread per element (grid-stride), the arithmetic of
// kernels/exact_sum_rules.h, so the bits are the CPU's. An element's two limbs are a
// read-modify-write of its own words: no atomics, no order between threads to matter.
#include "core/launch.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/exact_sum.cuh"
#include "kernels/exact_sum_rules.h"

namespace gradaccum::cuda {
namespace {

__device__ __forceinline__ float to_f32(float x) {
  return x;
}
__device__ __forceinline__ float to_f32(__half x) {
  return __half2float(x);
}

template <typename G>
__global__ void exact_add_kernel(std::uint64_t* limbs, const G* g, std::int64_t n,
                                 const float* scale, std::uint32_t* nonfinite,
                                 const std::uint32_t* skip_if) {
  if (ew::skipped(skip_if)) return;
  const bool scaled = scale != nullptr;
  const float s = scaled ? *scale : 1.0f;
  bool bad = false;
  for (std::int64_t i = ew::global_thread(); i < n; i += ew::grid_threads()) {
    const float x = scaled ? __fmul_rn(to_f32(g[i]), s) : to_f32(g[i]);
    if (!exact_rules::finite(x)) {
      bad = true;
      continue;
    }
    exact_rules::add(limbs + i, n, x);
  }
  if (bad) ew::raise_flag(nonfinite);
}

__global__ void exact_round_kernel(const std::uint64_t* limbs, float* out, std::int64_t n) {
  for (std::int64_t i = ew::global_thread(); i < n; i += ew::grid_threads())
    out[i] = exact_rules::round(limbs + i, n);
}

template <typename G>
void launch_add(std::uint64_t* limbs, const G* g, std::int64_t n, const AccumulateFlags& f) {
  if (n == 0) return;
  GA_LAUNCH(exact_add_kernel<G>, ew::grid_for(n), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), limbs, g, n, f.scale, f.nonfinite, f.skip_if);
}

}  // namespace

void exact_add_f32(std::uint64_t* limbs, const float* g, std::int64_t n, const AccumulateFlags& f) {
  launch_add(limbs, g, n, f);
}

void exact_add_f16(std::uint64_t* limbs, const std::uint16_t* g, std::int64_t n,
                   const AccumulateFlags& f) {
  launch_add(limbs, ew::as_half(g), n, f);
}

void exact_round(const std::uint64_t* limbs, float* out, std::int64_t n) {
  if (n == 0) return;
  GA_LAUNCH(exact_round_kernel, ew::grid_for(n), dim3(ew::kBlock), 0, ::gradaccum::current_stream(),
            limbs, out, n);
}

}  // namespace gradaccum::cuda
