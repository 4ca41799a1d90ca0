// CUDA launchers of the L1 loss kernels (kernels/l1_loss.cu). Plain C++ types: f16 data is
// passed as its 16-bit patterns. The current stream.
#pragma once

#include <cstdint>

#include "kernels/window_scalars.h"

namespace gradaccum::cuda {

// l1_loss_forward's extras (kernels/l1_loss.h) as device pointers; null ones are not done.
struct L1Extras {
  float* compensation = nullptr;
  float* reduced = nullptr;
  double reduced_factor = 1.0;
  WindowCounts* counts = nullptr;
  std::uint64_t samples = 0;
  std::uint64_t elements = 0;
  float* loss_scale = nullptr;
  float* inv_loss_scale = nullptr;
  LossScaleRule rule;
};

// *loss = (accumulate ? *loss : 0) + row_sum[0] + row_sum[1] + ... (one f32 chain in row
// order; Kahan-compensated with extras.compensation), row_sum[r] = f32 chain over the columns of
// |pred - target|. rows may be 0. Then the other extras.
void l1_loss_forward_f32(const float* pred, const float* target, float* loss, std::int64_t rows,
                         std::int64_t cols, bool accumulate, const L1Extras& extras);
void l1_loss_forward_f16(const std::uint16_t* pred, const std::uint16_t* target, float* loss,
                         std::int64_t rows, std::int64_t cols, bool accumulate,
                         const L1Extras& extras);

// dpred (=, or += when accumulate) sign(pred - target) * (factor * *scale); scale may be null.
void l1_loss_backward_f32(const float* pred, const float* target, float factor, const float* scale,
                          float* dpred, std::int64_t n, bool accumulate);
void l1_loss_backward_f16(const std::uint16_t* pred, const std::uint16_t* target, float factor,
                          const float* scale, std::uint16_t* dpred, std::int64_t n,
                          bool accumulate);

}  // namespace gradaccum::cuda
