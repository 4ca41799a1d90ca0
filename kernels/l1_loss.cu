// L1 loss on the device. The forward is one block: its threads compute row sums (each a fixed
// left-to-right f32 chain over the columns) a block of rows at a time, and thread 0 adds them
// to the accumulator in row order; the result is bit-identical to the CPU's. The backward is a
// vectorised grid-stride elementwise kernel. The forward's extras (a compensated chain, the
// reduced value, a window count) are done by its chaining thread, in the same launch.
#include "core/launch.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/l1_loss.cuh"
#include "kernels/window_scalars_rules.h"

namespace gradaccum::cuda {
namespace {

using ew::as_half;
using ew::kPack;
using ew::Pack;

constexpr int kForwardThreads = 256;

__device__ __forceinline__ float to_f32(float x) {
  return x;
}
__device__ __forceinline__ float to_f32(__half x) {
  return __half2float(x);
}

template <typename T>
__global__ void l1_forward_kernel(const T* pred, const T* target, float* loss, std::int64_t rows,
                                  std::int64_t cols, bool accumulate, L1Extras ex) {
  __shared__ float row_sums[kForwardThreads];
  float acc = 0.0f;   // the chain, kept by thread 0
  float comp = 0.0f;  // its Kahan compensation (extras.compensation)
  const bool kahan = ex.compensation != nullptr;
  if (threadIdx.x == 0 && accumulate) {
    acc = *loss;
    if (kahan) comp = *ex.compensation;
  }
  for (std::int64_t base = 0; base < rows; base += blockDim.x) {
    const std::int64_t r = base + threadIdx.x;
    if (r < rows) {
      const T* p = pred + r * cols;
      const T* t = target + r * cols;
      float s = 0.0f;
      for (std::int64_t c = 0; c < cols; ++c)
        s = s + fabsf(to_f32(p[c]) - to_f32(t[c]));
      row_sums[threadIdx.x] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const std::int64_t left = rows - base;
      const int count = left < blockDim.x ? static_cast<int>(left) : static_cast<int>(blockDim.x);
      for (int j = 0; j < count; ++j) {
        if (kahan) {
          ew::kahan_add(acc, comp, row_sums[j]);
        } else {
          acc = acc + row_sums[j];
        }
      }
    }
    __syncthreads();
  }
  if (threadIdx.x != 0) return;
  *loss = acc;
  if (kahan) *ex.compensation = comp;
  if (ex.reduced != nullptr) {
    *ex.reduced = acc;
    window_rules::scale(ex.reduced, ex.reduced_factor);
  }
  if (ex.counts != nullptr) {
    window_rules::count_micro_batch(ex.counts, nullptr, ex.samples, ex.elements, ex.loss_scale,
                                    ex.inv_loss_scale, ex.rule);
  }
}

// sign(p - t) * coef, 0 at equality, NaN when either is NaN.
__device__ __forceinline__ float l1_grad(float p, float t, float coef) {
  return p > t ? coef : (p < t ? -coef : (p == t ? 0.0f : p - t));
}

__device__ __forceinline__ float combine(float old, float g, bool accumulate) {
  return accumulate ? old + g : g;
}
// f16: computed in f32 and rounded to half once at the end.
__device__ __forceinline__ __half combine(__half old, float g, bool accumulate) {
  return __float2half_rn(accumulate ? __half2float(old) + g : g);
}

template <typename T>
__global__ void l1_backward_kernel(const T* pred, const T* target, float factor, const float* scale,
                                   T* dpred, std::int64_t n, bool accumulate, bool vec) {
  const float coef = scale != nullptr ? factor * *scale : factor;
  const std::int64_t first = ew::global_thread();
  const std::int64_t stride = ew::grid_threads();
  const std::int64_t packs = vec ? n / kPack : 0;
  for (std::int64_t p = first; p < packs; p += stride) {
    const Pack<T> a = ew::load_pack(pred, p);
    const Pack<T> b = ew::load_pack(target, p);
    Pack<T> out = accumulate ? ew::load_pack(static_cast<const T*>(dpred), p) : Pack<T>{};
#pragma unroll
    for (int k = 0; k < kPack; ++k) {
      out.v[k] = combine(out.v[k], l1_grad(to_f32(a.v[k]), to_f32(b.v[k]), coef), accumulate);
    }
    ew::store_pack(dpred, p, out);
  }
  for (std::int64_t i = packs * kPack + first; i < n; i += stride) {
    dpred[i] = combine(dpred[i], l1_grad(to_f32(pred[i]), to_f32(target[i]), coef), accumulate);
  }
}

template <typename T>
void launch_forward(const T* pred, const T* target, float* loss, std::int64_t rows,
                    std::int64_t cols, bool accumulate, const L1Extras& ex) {
  // Always launched: an empty batch still overwrites the loss with 0.
  GA_LAUNCH(l1_forward_kernel<T>, dim3(1), dim3(kForwardThreads), 0, ::gradaccum::current_stream(),
            pred, target, loss, rows, cols, accumulate, ex);
}

template <typename T>
void launch_backward(const T* pred, const T* target, float factor, const float* scale, T* dpred,
                     std::int64_t n, bool accumulate) {
  if (n == 0) return;
  const bool vec = ew::aligned16(pred) && ew::aligned16(target) && ew::aligned16(dpred);
  GA_LAUNCH(l1_backward_kernel<T>, ew::grid_for_elements(n), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), pred, target, factor, scale, dpred, n, accumulate, vec);
}

}  // namespace

void l1_loss_forward_f32(const float* pred, const float* target, float* loss, std::int64_t rows,
                         std::int64_t cols, bool accumulate, const L1Extras& ex) {
  launch_forward(pred, target, loss, rows, cols, accumulate, ex);
}

void l1_loss_forward_f16(const std::uint16_t* pred, const std::uint16_t* target, float* loss,
                         std::int64_t rows, std::int64_t cols, bool accumulate,
                         const L1Extras& ex) {
  launch_forward(as_half(pred), as_half(target), loss, rows, cols, accumulate, ex);
}

void l1_loss_backward_f32(const float* pred, const float* target, float factor, const float* scale,
                          float* dpred, std::int64_t n, bool accumulate) {
  launch_backward(pred, target, factor, scale, dpred, n, accumulate);
}

void l1_loss_backward_f16(const std::uint16_t* pred, const std::uint16_t* target, float factor,
                          const float* scale, std::uint16_t* dpred, std::int64_t n,
                          bool accumulate) {
  launch_backward(as_half(pred), as_half(target), factor, scale, as_half(dpred), n, accumulate);
}

}  // namespace gradaccum::cuda
