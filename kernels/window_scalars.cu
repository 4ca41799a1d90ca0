// One-thread kernels for the accumulation window's device scalars (kernels/window_scalars.h).
#include "core/launch.cuh"
#include "kernels/window_scalars.cuh"
#include "kernels/window_scalars_rules.h"

namespace gradaccum::cuda {
namespace {

__global__ void reset_counts_kernel(WindowCounts* counts) {
  window_rules::reset(counts);
}

__global__ void scale_scalar_kernel(float* t, double factor) {
  window_rules::scale(t, factor);
}

__global__ void count_micro_batch_kernel(WindowCounts* counts, const std::uint32_t* dropped,
                                         std::uint64_t samples, std::uint64_t elements,
                                         float* loss_scale, float* inv_loss_scale,
                                         LossScaleRule rule) {
  window_rules::count_micro_batch(counts, dropped, samples, elements, loss_scale, inv_loss_scale,
                                  rule);
}

__global__ void grad_scale_kernel(const WindowCounts* counts, WindowDivisor divisor,
                                  const float* unscale, float* grad_scale, std::uint32_t* skip) {
  window_rules::grad_scale(counts, divisor, unscale, grad_scale, skip);
}

__global__ void end_step_kernel(WindowCounts* counts, const std::uint32_t* overflow,
                                float* loss_scale, float* inv_loss_scale, LossScaleRule rule,
                                StepRecordPointers r) {
  window_rules::end_step(counts, overflow, loss_scale, inv_loss_scale, rule);
  if (r.record != nullptr) {
    window_rules::record_step(counts, loss_scale, r.loss_sum, r.loss_sum_comp, r.skip, r.record);
  }
}

const dim3 kOne(1);

}  // namespace

void reset_window_counts(WindowCounts* counts) {
  GA_LAUNCH(reset_counts_kernel, kOne, kOne, 0, ::gradaccum::current_stream(), counts);
}

void scale_scalar(float* t, double factor) {
  GA_LAUNCH(scale_scalar_kernel, kOne, kOne, 0, ::gradaccum::current_stream(), t, factor);
}

void window_count_micro_batch(WindowCounts* counts, const std::uint32_t* dropped,
                              std::uint64_t samples, std::uint64_t elements, float* loss_scale,
                              float* inv_loss_scale, LossScaleRule rule) {
  GA_LAUNCH(count_micro_batch_kernel, kOne, kOne, 0, ::gradaccum::current_stream(), counts, dropped,
            samples, elements, loss_scale, inv_loss_scale, rule);
}

void window_grad_scale(const WindowCounts* counts, WindowDivisor divisor, const float* unscale,
                       float* grad_scale, std::uint32_t* skip) {
  GA_LAUNCH(grad_scale_kernel, kOne, kOne, 0, ::gradaccum::current_stream(), counts, divisor,
            unscale, grad_scale, skip);
}

void window_end_step(WindowCounts* counts, const std::uint32_t* overflow, float* loss_scale,
                     float* inv_loss_scale, LossScaleRule rule, const StepRecordPointers& record) {
  GA_LAUNCH(end_step_kernel, kOne, kOne, 0, ::gradaccum::current_stream(), counts, overflow,
            loss_scale, inv_loss_scale, rule, record);
}

}  // namespace gradaccum::cuda
