// BatchNorm1d on the device. The row sums give each thread one channel and a strided share of
// the rows, sum exactly into thread-local limbs (kernels/exact_sum_rules.h) and add those limbs
// to the channel's accumulator with integer atomics: integer addition is associative, so the
// bits do not depend on the geometry. Everything else is elementwise, with the arithmetic of
// kernels/batch_norm_rules.h, as on the CPU.
#include "core/launch.cuh"
#include "kernels/batch_norm.cuh"
#include "kernels/batch_norm_rules.h"
#include "kernels/elementwise.cuh"
#include "kernels/exact_sum_rules.h"

namespace gradaccum::cuda {
namespace {

constexpr int kChannelsPerBlock = 32;
constexpr int kRowGroups = 8;
constexpr std::int64_t kMaxRowBlocks = 256;

__device__ __forceinline__ float load(const float* p, std::int64_t i) {
  return p[i];
}
__device__ __forceinline__ float load(const __half* p, std::int64_t i) {
  return __half2float(p[i]);
}
__device__ __forceinline__ void store(float* p, std::int64_t i, float v) {
  p[i] = v;
}
__device__ __forceinline__ void store(__half* p, std::int64_t i, float v) {
  p[i] = __float2half_rn(v);
}

// Adds the finite x to thread-local limbs; false (nothing added) for a non-finite x.
__device__ __forceinline__ bool add_local(std::uint64_t* limbs, float x) {
  if (!exact_rules::finite(x)) return false;
  exact_rules::add(limbs, 1, x);
  return true;
}

// Adds thread-local limbs into a channel's accumulator (limbs: its limb 0; limb j is j * channels
// further).
__device__ __forceinline__ void flush(const std::uint64_t* local, std::uint64_t* limbs,
                                      std::int64_t channels) {
  for (int j = 0; j < exact_rules::kLimbs; ++j) {
    if (local[j] != 0) {
      atomicAdd(reinterpret_cast<unsigned long long*>(limbs + j * channels),
                static_cast<unsigned long long>(local[j]));
    }
  }
}

template <typename T>
__global__ void sum_rows_kernel(BatchNormRows r, BatchNormSumKind kind, std::uint64_t* limbs_a,
                                std::uint64_t* limbs_b, std::uint32_t* nonfinite) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * kChannelsPerBlock + threadIdx.x;
  if (c >= r.channels) return;
  const T* x = static_cast<const T*>(r.x);
  const T* dy = static_cast<const T*>(r.dy);
  std::uint64_t a[exact_rules::kLimbs] = {};
  std::uint64_t b[exact_rules::kLimbs] = {};
  const float mean = r.mean != nullptr ? r.mean[c] : 0.0f;
  const float invstd = r.invstd != nullptr ? r.invstd[c] : 0.0f;
  bool ok = true;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.y) * kRowGroups + threadIdx.y;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.y) * kRowGroups;
  for (std::int64_t n = first; n < r.rows; n += stride) {
    const std::int64_t i = n * r.channels + c;
    const float v = load(x, i);
    if (kind == BatchNormSumKind::Values) {
      ok = add_local(a, v) && ok;
    } else if (kind == BatchNormSumKind::SquaredDeviations) {
      ok = add_local(a, bn_rules::squared_deviation(v, mean)) && ok;
    } else {
      const float g = load(dy, i);
      ok = add_local(a, g) && ok;
      ok = add_local(b, g * bn_rules::xhat(v, mean, invstd)) && ok;
    }
  }
  flush(a, limbs_a + c, r.channels);
  if (kind == BatchNormSumKind::Backward) flush(b, limbs_b + c, r.channels);
  if (!ok) ew::raise_flag(nonfinite);
}

__global__ void channels_kernel(BatchNormChannelOp op, BatchNormChannelArgs a) {
  const bool bad = a.nonfinite != nullptr && *a.nonfinite != 0u;
  const float nan = __int_as_float(0x7fc00000);
  for (std::int64_t c = ew::global_thread(); c < a.channels; c += ew::grid_threads()) {
    switch (op) {
      case BatchNormChannelOp::Mean:
        a.out0[c] = bad ? nan : a.in0[c] / a.count;
        break;
      case BatchNormChannelOp::Variance: {
        const float var = bad ? nan : a.in0[c] / a.count;
        a.out0[c] = var;
        a.out1[c] = bn_rules::invstd(var, a.eps);
        break;
      }
      case BatchNormChannelOp::Invstd:
        a.out1[c] = bn_rules::invstd(a.in0[c], a.eps);
        break;
      case BatchNormChannelOp::Running:
        a.out0[c] = bn_rules::running(a.out0[c], a.in0[c], a.momentum);
        a.out1[c] = bn_rules::running(a.out1[c], a.in1[c] * a.unbias, a.momentum);
        break;
    }
  }
}

template <typename T>
__global__ void forward_kernel(BatchNormRows r, const float* weight, const float* bias, T* y) {
  const T* x = static_cast<const T*>(r.x);
  const std::int64_t n = r.rows * r.channels;
  const bool affine = weight != nullptr;
  for (std::int64_t i = ew::global_thread(); i < n; i += ew::grid_threads()) {
    const std::int64_t c = i % r.channels;
    store(y, i,
          bn_rules::forward(load(x, i), r.mean[c], r.invstd[c], affine, affine ? weight[c] : 0.0f,
                            affine ? bias[c] : 0.0f));
  }
}

template <typename T>
__global__ void backward_input_kernel(BatchNormRows r, const float* weight, const float* sum_dy,
                                      const float* sum_dy_xhat, float count, T* dx,
                                      bool accumulate) {
  const T* x = static_cast<const T*>(r.x);
  const T* dy = static_cast<const T*>(r.dy);
  const std::int64_t n = r.rows * r.channels;
  for (std::int64_t i = ew::global_thread(); i < n; i += ew::grid_threads()) {
    const std::int64_t c = i % r.channels;
    const float invstd = r.invstd[c];
    const float scale = weight != nullptr ? weight[c] * invstd : invstd;
    const float mean_dy = sum_dy != nullptr ? sum_dy[c] / count : 0.0f;
    const float mean_dy_xhat = sum_dy_xhat != nullptr ? sum_dy_xhat[c] / count : 0.0f;
    const float h = bn_rules::xhat(load(x, i), r.mean[c], invstd);
    float v = bn_rules::backward_input(load(dy, i), h, mean_dy, mean_dy_xhat, scale);
    if (accumulate) v = load(dx, i) + v;
    store(dx, i, v);
  }
}

dim3 sum_grid(const BatchNormRows& r) {
  const std::int64_t channel_blocks = (r.channels + kChannelsPerBlock - 1) / kChannelsPerBlock;
  std::int64_t row_blocks = (r.rows + 8 * kRowGroups - 1) / (8 * kRowGroups);
  if (row_blocks > kMaxRowBlocks) row_blocks = kMaxRowBlocks;
  if (row_blocks < 1) row_blocks = 1;
  return dim3(static_cast<unsigned>(channel_blocks), static_cast<unsigned>(row_blocks));
}

}  // namespace

void batch_norm_sum_rows(const BatchNormRows& r, BatchNormSumKind kind, std::uint64_t* limbs_a,
                         std::uint64_t* limbs_b, std::uint32_t* nonfinite) {
  if (r.rows == 0 || r.channels == 0) return;
  const dim3 block(kChannelsPerBlock, kRowGroups);
  if (r.f16) {
    GA_LAUNCH(sum_rows_kernel<__half>, sum_grid(r), block, 0, ::gradaccum::current_stream(), r,
              kind, limbs_a, limbs_b, nonfinite);
  } else {
    GA_LAUNCH(sum_rows_kernel<float>, sum_grid(r), block, 0, ::gradaccum::current_stream(), r, kind,
              limbs_a, limbs_b, nonfinite);
  }
}

void batch_norm_channels(BatchNormChannelOp op, const BatchNormChannelArgs& a) {
  if (a.channels == 0) return;
  GA_LAUNCH(channels_kernel, ew::grid_for(a.channels), dim3(ew::kBlock), 0,
            ::gradaccum::current_stream(), op, a);
}

void batch_norm_forward(const BatchNormRows& r, const float* weight, const float* bias, void* y) {
  const std::int64_t n = r.rows * r.channels;
  if (n == 0) return;
  if (r.f16) {
    GA_LAUNCH(forward_kernel<__half>, ew::grid_for(n), dim3(ew::kBlock), 0,
              ::gradaccum::current_stream(), r, weight, bias, static_cast<__half*>(y));
  } else {
    GA_LAUNCH(forward_kernel<float>, ew::grid_for(n), dim3(ew::kBlock), 0,
              ::gradaccum::current_stream(), r, weight, bias, static_cast<float*>(y));
  }
}

void batch_norm_backward_input(const BatchNormRows& r, const float* weight, const float* sum_dy,
                               const float* sum_dy_xhat, float count, void* dx, bool accumulate) {
  const std::int64_t n = r.rows * r.channels;
  if (n == 0) return;
  if (r.f16) {
    GA_LAUNCH(backward_input_kernel<__half>, ew::grid_for(n), dim3(ew::kBlock), 0,
              ::gradaccum::current_stream(), r, weight, sum_dy, sum_dy_xhat, count,
              static_cast<__half*>(dx), accumulate);
  } else {
    GA_LAUNCH(backward_input_kernel<float>, ew::grid_for(n), dim3(ew::kBlock), 0,
              ::gradaccum::current_stream(), r, weight, sum_dy, sum_dy_xhat, count,
              static_cast<float*>(dx), accumulate);
  }
}

}  // namespace gradaccum::cuda
