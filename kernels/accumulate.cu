// Accumulation on the device: vectorised (16-byte accesses, packs of 8 elements) grid-stride
// kernels. The arithmetic is the CPU's (kernels/accumulate.cpp), operation for operation.
#include "core/launch.cuh"
#include "kernels/accumulate.cuh"
#include "kernels/elementwise.cuh"

namespace gradaccum::cuda {
namespace {

using ew::as_half;
using ew::kPack;
using ew::Pack;

__device__ __forceinline__ float to_f32(float x) {
  return x;
}
__device__ __forceinline__ float to_f32(__half x) {
  return __half2float(x);
}

// acc + g (* scale), one rounding per operation; reports whether the result is finite.
__device__ __forceinline__ float add_scaled(float acc, float g, bool scaled, float s, bool& bad) {
  const float x = scaled ? g * s : g;
  const float r = acc + x;
  bad |= !ew::finite_f32(r);
  return r;
}
__device__ __forceinline__ float add_scaled(float acc, __half g, bool scaled, float s, bool& bad) {
  return add_scaled(acc, __half2float(g), scaled, s, bad);
}
// fp16 accumulator: fp16 arithmetic. The scaled gradient is rounded to f32 and then to half
// before the (correctly rounded) fp16 addition.
__device__ __forceinline__ __half add_scaled(__half acc, __half g, bool scaled, float s,
                                             bool& bad) {
  const __half x = scaled ? __float2half_rn(__half2float(g) * s) : g;
  const __half r = __hadd(acc, x);
  bad |= !ew::finite_f16(r);
  return r;
}

// Kahan step with comp = what acc is missing (the sum is ~ acc + comp).
__device__ __forceinline__ void kahan_add(float& acc, float& comp, float g, bool scaled, float s,
                                          bool& bad) {
  const float x = scaled ? g * s : g;
  const float y = x + comp;
  const float t = acc + y;
  comp = y - (t - acc);
  acc = t;
  bad |= !ew::finite_f32(t);
}

template <typename A, typename G>
__global__ void accumulate_kernel(A* acc, const G* g, std::int64_t n, const float* scale,
                                  std::uint32_t* nonfinite, const std::uint32_t* skip_if,
                                  bool vec) {
  if (ew::skipped(skip_if)) return;
  // Read once: the scale pointer could alias acc, so a per-element read would be reloaded
  // after every store.
  const bool scaled = scale != nullptr;
  const float s = scaled ? *scale : 1.0f;
  const std::int64_t first = ew::global_thread();
  const std::int64_t stride = ew::grid_threads();
  const std::int64_t packs = vec ? n / kPack : 0;
  bool bad = false;
  for (std::int64_t p = first; p < packs; p += stride) {
    Pack<A> a = ew::load_pack(static_cast<const A*>(acc), p);
    const Pack<G> b = ew::load_pack(g, p);
#pragma unroll
    for (int k = 0; k < kPack; ++k)
      a.v[k] = add_scaled(a.v[k], b.v[k], scaled, s, bad);
    ew::store_pack(acc, p, a);
  }
  for (std::int64_t i = packs * kPack + first; i < n; i += stride) {
    acc[i] = add_scaled(acc[i], g[i], scaled, s, bad);
  }
  if (bad) ew::raise_flag(nonfinite);
}

template <typename G>
__global__ void accumulate_kahan_kernel(float* acc, float* comp, const G* g, std::int64_t n,
                                        const float* scale, std::uint32_t* nonfinite,
                                        const std::uint32_t* skip_if, bool vec) {
  if (ew::skipped(skip_if)) return;
  // Read once: the scale pointer could alias acc, so a per-element read would be reloaded
  // after every store.
  const bool scaled = scale != nullptr;
  const float s = scaled ? *scale : 1.0f;
  const std::int64_t first = ew::global_thread();
  const std::int64_t stride = ew::grid_threads();
  const std::int64_t packs = vec ? n / kPack : 0;
  bool bad = false;
  for (std::int64_t p = first; p < packs; p += stride) {
    Pack<float> a = ew::load_pack(static_cast<const float*>(acc), p);
    Pack<float> c = ew::load_pack(static_cast<const float*>(comp), p);
    const Pack<G> b = ew::load_pack(g, p);
#pragma unroll
    for (int k = 0; k < kPack; ++k)
      kahan_add(a.v[k], c.v[k], to_f32(b.v[k]), scaled, s, bad);
    ew::store_pack(acc, p, a);
    ew::store_pack(comp, p, c);
  }
  for (std::int64_t i = packs * kPack + first; i < n; i += stride) {
    float a = acc[i];
    float c = comp[i];
    kahan_add(a, c, to_f32(g[i]), scaled, s, bad);
    acc[i] = a;
    comp[i] = c;
  }
  if (bad) ew::raise_flag(nonfinite);
}

template <typename T>
__global__ void check_finite_kernel(const T* t, std::int64_t n, std::uint32_t* flag, bool vec) {
  const std::int64_t first = ew::global_thread();
  const std::int64_t stride = ew::grid_threads();
  const std::int64_t packs = vec ? n / kPack : 0;
  bool bad = false;
  for (std::int64_t p = first; p < packs; p += stride) {
    const Pack<T> v = ew::load_pack(t, p);
#pragma unroll
    for (int k = 0; k < kPack; ++k)
      bad |= !ew::finite_f32(to_f32(v.v[k]));
  }
  for (std::int64_t i = packs * kPack + first; i < n; i += stride) {
    bad |= !ew::finite_f32(to_f32(t[i]));
  }
  if (bad) ew::raise_flag(flag);
}

template <typename A, typename G>
void launch_accumulate(A* acc, const G* g, std::int64_t n, const AccumulateFlags& f) {
  if (n == 0) return;
  const bool vec = ew::aligned16(acc) && ew::aligned16(g);
  GA_LAUNCH((accumulate_kernel<A, G>), ew::grid_for_elements(n), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), acc, g, n, f.scale, f.nonfinite, f.skip_if, vec);
}

template <typename G>
void launch_kahan(float* acc, float* comp, const G* g, std::int64_t n, const AccumulateFlags& f) {
  if (n == 0) return;
  const bool vec = ew::aligned16(acc) && ew::aligned16(comp) && ew::aligned16(g);
  GA_LAUNCH(accumulate_kahan_kernel<G>, ew::grid_for_elements(n), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), acc, comp, g, n, f.scale, f.nonfinite, f.skip_if, vec);
}

template <typename T>
void launch_check_finite(const T* t, std::int64_t n, std::uint32_t* flag) {
  if (n == 0) return;
  GA_LAUNCH(check_finite_kernel<T>, ew::grid_for_elements(n), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), t, n, flag, ew::aligned16(t));
}

}  // namespace

void accumulate_f32_f32(float* acc, const float* g, std::int64_t n, const AccumulateFlags& f) {
  launch_accumulate(acc, g, n, f);
}

void accumulate_f32_f16(float* acc, const std::uint16_t* g, std::int64_t n,
                        const AccumulateFlags& f) {
  launch_accumulate(acc, as_half(g), n, f);
}

void accumulate_f16_f16(std::uint16_t* acc, const std::uint16_t* g, std::int64_t n,
                        const AccumulateFlags& f) {
  launch_accumulate(as_half(acc), as_half(g), n, f);
}

void accumulate_kahan_f32(float* acc, float* comp, const float* g, std::int64_t n,
                          const AccumulateFlags& f) {
  launch_kahan(acc, comp, g, n, f);
}

void accumulate_kahan_f16(float* acc, float* comp, const std::uint16_t* g, std::int64_t n,
                          const AccumulateFlags& f) {
  launch_kahan(acc, comp, as_half(g), n, f);
}

void check_finite_f32(const float* t, std::int64_t n, std::uint32_t* flag) {
  launch_check_finite(t, n, flag);
}

void check_finite_f16(const std::uint16_t* t, std::int64_t n, std::uint32_t* flag) {
  launch_check_finite(as_half(t), n, flag);
}

}  // namespace gradaccum::cuda
