// The arithmetic of kernels/window_scalars.h, shared by the CPU path and the CUDA kernels so
// that both compute bit-identical scalars. Private to kernels/.
#pragma once

#include <cstdint>

#include "kernels/window_scalars.h"

#if defined(__host__) && defined(__device__)
#define GA_WINDOW_HD __host__ __device__
#else
#define GA_WINDOW_HD
#endif

namespace gradaccum::window_rules {

GA_WINDOW_HD inline void reset(WindowCounts* c) {
  c->samples = 0;
  c->elements = 0;
  c->micro_batches = 0;
  c->dropped = 0;
}

GA_WINDOW_HD inline void scale(float* t, double factor) {
  *t = static_cast<float>(static_cast<double>(*t) * factor);
}

GA_WINDOW_HD inline void count_micro_batch(WindowCounts* c, const std::uint32_t* dropped,
                                           std::uint64_t samples, std::uint64_t elements,
                                           float* loss_scale, float* inv_loss_scale,
                                           const LossScaleRule& rule) {
  if (dropped != nullptr && *dropped != 0u) {
    c->dropped += 1;
    if (rule.dynamic) {
      *loss_scale = *loss_scale * rule.backoff;
      c->growth_tracker = 0;
    }
  } else {
    c->samples += samples;
    c->elements += elements;
    c->micro_batches += 1;
  }
  *inv_loss_scale = static_cast<float>(1.0 / static_cast<double>(*loss_scale));
}

GA_WINDOW_HD inline void grad_scale(const WindowCounts* c, WindowDivisor divisor,
                                    const float* unscale, float* out, std::uint32_t* skip) {
  std::uint64_t d = 1;
  switch (divisor) {
    case WindowDivisor::One:
      d = c->micro_batches == 0 ? 0 : 1;  // nothing counted: nothing to apply
      break;
    case WindowDivisor::Samples:
      d = c->samples;
      break;
    case WindowDivisor::Elements:
      d = c->elements;
      break;
    case WindowDivisor::MicroBatches:
      d = c->micro_batches;
      break;
  }
  if (d == 0) {
    *out = 0.0f;
    *skip = 1u;
    return;
  }
  double denom = static_cast<double>(d);
  if (unscale != nullptr) denom *= static_cast<double>(*unscale);
  *out = static_cast<float>(1.0 / denom);
}

GA_WINDOW_HD inline void end_step(WindowCounts* c, const std::uint32_t* overflow, float* loss_scale,
                                  float* inv_loss_scale, const LossScaleRule& rule) {
  if (rule.dynamic) {
    if (overflow != nullptr && *overflow != 0u) {
      *loss_scale = *loss_scale * rule.backoff;
      c->growth_tracker = 0;
    } else if (c->dropped == 0) {
      c->growth_tracker += 1;
      if (c->growth_tracker >= rule.growth_interval) {
        *loss_scale = *loss_scale * rule.growth;
        c->growth_tracker = 0;
      }
    }
  }
  *inv_loss_scale = static_cast<float>(1.0 / static_cast<double>(*loss_scale));
}

GA_WINDOW_HD inline void record_step(const WindowCounts* c, const float* loss_scale,
                                     const float* loss_sum, const float* loss_sum_comp,
                                     const std::uint32_t* skip, WindowStepRecord* out) {
  out->counts = *c;
  out->loss_scale = *loss_scale;
  out->loss_sum = *loss_sum;
  out->loss_sum_comp = *loss_sum_comp;
  out->skipped = *skip;
}

}  // namespace gradaccum::window_rules
