// ReLU on the device: vectorised grid-stride elementwise kernels.
#include "core/launch.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/relu.cuh"

namespace gradaccum::cuda {
namespace {

using ew::as_half;
using ew::kPack;
using ew::Pack;

// max(x, 0), with NaN propagated and -0 mapped to +0 (as on the CPU).
__device__ __forceinline__ float relu_value(float x) {
  return (x > 0.0f || x != x) ? x : 0.0f;
}
__device__ __forceinline__ __half relu_value(__half x) {
  const unsigned short h = __half_as_ushort(x);
  const bool negative = (h & 0x8000u) != 0 && (h & 0x7FFFu) <= 0x7C00u;  // incl. -0, -inf
  return negative ? __ushort_as_half(0) : x;
}

// y > 0 (false for NaN).
__device__ __forceinline__ bool positive(float y) {
  return y > 0.0f;
}
__device__ __forceinline__ bool positive(__half y) {
  const unsigned short h = __half_as_ushort(y);
  return (h & 0x8000u) == 0 && h != 0 && h <= 0x7C00u;
}

__device__ __forceinline__ float zero_value(float) {
  return 0.0f;
}
__device__ __forceinline__ __half zero_value(__half) {
  return __ushort_as_half(0);
}

// One rounding of the exact sum: f32 addition, or fp16 addition for halves.
__device__ __forceinline__ float add_value(float a, float b) {
  return a + b;
}
__device__ __forceinline__ __half add_value(__half a, __half b) {
  return __hadd(a, b);
}

template <typename T>
__global__ void relu_forward_kernel(const T* x, T* y, std::int64_t n, bool vec) {
  const std::int64_t first = ew::global_thread();
  const std::int64_t stride = ew::grid_threads();
  const std::int64_t packs = vec ? n / kPack : 0;
  for (std::int64_t p = first; p < packs; p += stride) {
    Pack<T> v = ew::load_pack(x, p);
#pragma unroll
    for (int k = 0; k < kPack; ++k)
      v.v[k] = relu_value(v.v[k]);
    ew::store_pack(y, p, v);
  }
  for (std::int64_t i = packs * kPack + first; i < n; i += stride)
    y[i] = relu_value(x[i]);
}

template <typename T>
__global__ void relu_backward_kernel(const T* dy, const T* y, T* dx, std::int64_t n,
                                     bool accumulate, bool vec) {
  const std::int64_t first = ew::global_thread();
  const std::int64_t stride = ew::grid_threads();
  const std::int64_t packs = vec ? n / kPack : 0;
  for (std::int64_t p = first; p < packs; p += stride) {
    const Pack<T> d = ew::load_pack(dy, p);
    const Pack<T> m = ew::load_pack(y, p);
    Pack<T> out = accumulate ? ew::load_pack(static_cast<const T*>(dx), p) : Pack<T>{};
#pragma unroll
    for (int k = 0; k < kPack; ++k) {
      const T g = positive(m.v[k]) ? d.v[k] : zero_value(d.v[k]);
      out.v[k] = accumulate ? add_value(out.v[k], g) : g;
    }
    ew::store_pack(dx, p, out);
  }
  for (std::int64_t i = packs * kPack + first; i < n; i += stride) {
    const T g = positive(y[i]) ? dy[i] : zero_value(dy[i]);
    dx[i] = accumulate ? add_value(dx[i], g) : g;
  }
}

template <typename T>
void launch_forward(const T* x, T* y, std::int64_t n) {
  if (n == 0) return;
  const bool vec = ew::aligned16(x) && ew::aligned16(y);
  GA_LAUNCH(relu_forward_kernel<T>, ew::grid_for_elements(n), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), x, y, n, vec);
}

template <typename T>
void launch_backward(const T* dy, const T* y, T* dx, std::int64_t n, bool accumulate) {
  if (n == 0) return;
  const bool vec = ew::aligned16(dy) && ew::aligned16(y) && ew::aligned16(dx);
  GA_LAUNCH(relu_backward_kernel<T>, ew::grid_for_elements(n), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), dy, y, dx, n, accumulate, vec);
}

}  // namespace

void relu_forward_f32(const float* x, float* y, std::int64_t n) {
  launch_forward(x, y, n);
}

void relu_forward_f16(const std::uint16_t* x, std::uint16_t* y, std::int64_t n) {
  launch_forward(as_half(x), as_half(y), n);
}

void relu_backward_f32(const float* dy, const float* y, float* dx, std::int64_t n,
                       bool accumulate) {
  launch_backward(dy, y, dx, n, accumulate);
}

void relu_backward_f16(const std::uint16_t* dy, const std::uint16_t* y, std::uint16_t* dx,
                       std::int64_t n, bool accumulate) {
  launch_backward(as_half(dy), as_half(y), as_half(dx), n, accumulate);
}

}  // namespace gradaccum::cuda
