// CUDA launchers of the BatchNorm1d kernels (kernels/batch_norm.cu). Plain C++ types: f16 data
// is passed as its 16-bit patterns; x, dy, dx share one dtype (f16 when `f16`). Statistics and
// sums are f32 [C]; limbs are ExactSum [C] accumulators (9 x C uint64, limb-major); flags are
// NonFiniteFlag words or null. The current stream; nothing is launched for empty tensors.
#pragma once

#include <cstdint>

namespace gradaccum::cuda {

// The rows of one BatchNorm kernel: x (and dy) [rows, channels].
struct BatchNormRows {
  const void* x = nullptr;
  const void* dy = nullptr;
  bool f16 = false;
  std::int64_t rows = 0;
  std::int64_t channels = 0;
  const float* mean = nullptr;
  const float* invstd = nullptr;
};

// What batch_norm_sum_rows adds into limbs_a (and limbs_b): Σ x; Σ (x - mean)²; Σ dy and
// Σ dy · x̂.
enum class BatchNormSumKind { Values, SquaredDeviations, Backward };
void batch_norm_sum_rows(const BatchNormRows& r, BatchNormSumKind kind, std::uint64_t* limbs_a,
                         std::uint64_t* limbs_b, std::uint32_t* nonfinite);

// Per-channel finishing arithmetic (kernels/batch_norm.h), over `channels` elements.
enum class BatchNormChannelOp {
  Mean,      // out0 = in0 / count (NaN under the flag)
  Variance,  // out0 = in0 / count, out1 = 1 / sqrt(out0 + eps) (NaN under the flag)
  Invstd,    // out1 = 1 / sqrt(in0 + eps)
  Running,   // out0 = (1 - m) out0 + m in0; out1 = (1 - m) out1 + m (in1 · unbias)
};
struct BatchNormChannelArgs {
  const float* in0 = nullptr;
  const float* in1 = nullptr;
  float* out0 = nullptr;
  float* out1 = nullptr;
  std::int64_t channels = 0;
  float count = 1.0f;
  float eps = 0.0f;
  float momentum = 0.0f;
  float unbias = 1.0f;
  const std::uint32_t* nonfinite = nullptr;
};
void batch_norm_channels(BatchNormChannelOp op, const BatchNormChannelArgs& a);

// y = x̂ · weight + bias (weight, bias null for no affine).
void batch_norm_forward(const BatchNormRows& r, const float* weight, const float* bias, void* y);
// dx (=, or += in f32 then rounded) from dy; sum_dy / sum_dy_xhat null: constant statistics.
void batch_norm_backward_input(const BatchNormRows& r, const float* weight, const float* sum_dy,
                               const float* sum_dy_xhat, float count, void* dx, bool accumulate);

}  // namespace gradaccum::cuda
