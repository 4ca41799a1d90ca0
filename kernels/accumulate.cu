// Accumulation on the device: vectorised (16-byte accesses, packs of 8 elements) grid-stride
// kernels, one tensor per launch or (f32) up to ew::kMaxSegments. The arithmetic is the CPU's
// (kernels/accumulate.cpp), operation for operation.
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
  ew::kahan_add(acc, comp, scaled ? g * s : g);
  bad |= !ew::finite_f32(acc);
}

// The loops of one tensor, for the elements this thread owns: packs first..packs-1 step stride,
// then the tail. Shared by the one-tensor kernels and the several-tensor ones.
template <typename A, typename G>
__device__ __forceinline__ void accumulate_range(A* acc, const G* g, std::int64_t n, bool vec,
                                                 std::int64_t first, std::int64_t stride,
                                                 bool scaled, float s, bool& bad) {
  const std::int64_t packs = vec ? n / kPack : 0;
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
}

template <typename G>
__device__ __forceinline__ void kahan_range(float* acc, float* comp, const G* g, std::int64_t n,
                                            bool vec, std::int64_t first, std::int64_t stride,
                                            bool scaled, float s, bool& bad) {
  const std::int64_t packs = vec ? n / kPack : 0;
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
}

template <typename T>
__device__ __forceinline__ void check_range(const T* t, std::int64_t n, bool vec,
                                            std::int64_t first, std::int64_t stride, bool& bad) {
  const std::int64_t packs = vec ? n / kPack : 0;
  for (std::int64_t p = first; p < packs; p += stride) {
    const Pack<T> v = ew::load_pack(t, p);
#pragma unroll
    for (int k = 0; k < kPack; ++k)
      bad |= !ew::finite_f32(to_f32(v.v[k]));
  }
  for (std::int64_t i = packs * kPack + first; i < n; i += stride) {
    bad |= !ew::finite_f32(to_f32(t[i]));
  }
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
  bool bad = false;
  accumulate_range(acc, g, n, vec, ew::global_thread(), ew::grid_threads(), scaled, s, bad);
  if (bad) ew::raise_flag(nonfinite);
}

template <typename G>
__global__ void accumulate_kahan_kernel(float* acc, float* comp, const G* g, std::int64_t n,
                                        const float* scale, std::uint32_t* nonfinite,
                                        const std::uint32_t* skip_if, bool vec) {
  if (ew::skipped(skip_if)) return;
  const bool scaled = scale != nullptr;  // read once, as above
  const float s = scaled ? *scale : 1.0f;
  bool bad = false;
  kahan_range(acc, comp, g, n, vec, ew::global_thread(), ew::grid_threads(), scaled, s, bad);
  if (bad) ew::raise_flag(nonfinite);
}

template <typename T>
__global__ void check_finite_kernel(const T* t, std::int64_t n, std::uint32_t* flag, bool vec) {
  bool bad = false;
  check_range(t, n, vec, ew::global_thread(), ew::grid_threads(), bad);
  if (bad) ew::raise_flag(flag);
}

// ---- several f32 tensors in one launch (ew::Segments) ----

struct MultiAccumulateArgs {
  ew::Segments sg;
  float* acc[ew::kMaxSegments];
  float* comp[ew::kMaxSegments];  // null: no Kahan for that tensor
  const float* g[ew::kMaxSegments];
  bool scaled[ew::kMaxSegments];  // the scale applies to tensor i
};

__global__ void accumulate_multi_kernel(MultiAccumulateArgs a, const float* scale,
                                        std::uint32_t* nonfinite, const std::uint32_t* skip_if) {
  if (ew::skipped(skip_if)) return;
  std::int64_t first = 0, stride = 0;
  const int i = ew::segment_of(a.sg, first, stride);
  const bool scaled = scale != nullptr && a.scaled[i];  // read once, as above
  const float s = scaled ? *scale : 1.0f;
  bool bad = false;
  if (a.comp[i] != nullptr) {
    kahan_range(a.acc[i], a.comp[i], a.g[i], a.sg.n[i], a.sg.vec[i], first, stride, scaled, s, bad);
  } else {
    accumulate_range(a.acc[i], a.g[i], a.sg.n[i], a.sg.vec[i], first, stride, scaled, s, bad);
  }
  if (bad) ew::raise_flag(nonfinite);
}

struct MultiCheckArgs {
  ew::Segments sg;
  const float* t[ew::kMaxSegments];
};

__global__ void check_finite_multi_kernel(MultiCheckArgs a, std::uint32_t* flag) {
  std::int64_t first = 0, stride = 0;
  const int i = ew::segment_of(a.sg, first, stride);
  bool bad = false;
  check_range(a.t[i], a.sg.n[i], a.sg.vec[i], first, stride, bad);
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

void accumulate_multi_f32(const MultiEntry* entries, int count, const AccumulateFlags& f) {
  ew::launch_in_groups<MultiAccumulateArgs>(
      count,
      [&](MultiAccumulateArgs& a, int j) {
        const MultiEntry& e = entries[j];
        if (e.n == 0) return;
        const int i = a.sg.count;
        a.acc[i] = e.acc;
        a.comp[i] = e.comp;
        a.g[i] = e.g;
        a.scaled[i] = e.scaled;
        ew::add_segment(a.sg, e.n,
                        ew::aligned16(e.acc) && ew::aligned16(e.comp) && ew::aligned16(e.g));
      },
      [&](const MultiAccumulateArgs& a, dim3 grid) {
        GA_LAUNCH(accumulate_multi_kernel, grid, dim3(ew::kBlock), 0, ::gradaccum::current_stream(),
                  a, f.scale, f.nonfinite, f.skip_if);
      });
}

void check_finite_multi_f32(const float* const* tensors, const std::int64_t* n, int count,
                            std::uint32_t* flag) {
  ew::launch_in_groups<MultiCheckArgs>(
      count,
      [&](MultiCheckArgs& a, int j) {
        if (n[j] == 0) return;
        a.t[a.sg.count] = tensors[j];
        ew::add_segment(a.sg, n[j], ew::aligned16(tensors[j]));
      },
      [&](const MultiCheckArgs& a, dim3 grid) {
        GA_LAUNCH(check_finite_multi_kernel, grid, dim3(ew::kBlock), 0,
                  ::gradaccum::current_stream(), a, flag);
      });
}

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
