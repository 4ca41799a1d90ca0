// CUDA launchers of kernels/window_scalars.h (plain C++ declarations; raw device pointers).
#pragma once

#include <cstdint>

#include "kernels/window_scalars.h"

namespace gradaccum::cuda {

void reset_window_counts(WindowCounts* counts);
void scale_scalar(float* t, double factor);
void window_count_micro_batch(WindowCounts* counts, const std::uint32_t* dropped,
                              std::uint64_t samples, std::uint64_t elements, float* loss_scale,
                              float* inv_loss_scale, LossScaleRule rule);
void window_grad_scale(const WindowCounts* counts, WindowDivisor divisor, const float* unscale,
                       float* grad_scale, std::uint32_t* skip);
// record: written after the update when not null (loss_sum, loss_sum_comp, skip: its sources).
struct StepRecordPointers {
  WindowStepRecord* record = nullptr;
  const float* loss_sum = nullptr;
  const float* loss_sum_comp = nullptr;
  const std::uint32_t* skip = nullptr;
};
void window_end_step(WindowCounts* counts, const std::uint32_t* overflow, float* loss_scale,
                     float* inv_loss_scale, LossScaleRule rule, const StepRecordPointers& record);

}  // namespace gradaccum::cuda
