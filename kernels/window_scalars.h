// Single-value device kernels of an accumulation window (autograd/optim): the window's sample
// counts, the loss scale, and the gradient scale of the optimizer step live in device memory
// (host memory for CPU windows) so that a window never waits on the device between steps.
// Everything here is one tiny launch (one thread) on the tensors' device.
#pragma once

#include <cstdint>

#include "core/storage.h"
#include "core/tensor.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum {

// The counts of one accumulation window, kept in device memory (a Storage of this size).
// 64-bit throughout: sample counts past 2^31 stay exact.
struct WindowCounts {
  std::uint64_t samples = 0;         // samples of the micro-batches counted in the window
  std::uint64_t elements = 0;        // loss elements (samples x outputs) of those micro-batches
  std::uint64_t micro_batches = 0;   // micro-batches counted
  std::uint64_t dropped = 0;         // micro-batches left out (drop-micro-batch policy)
  std::uint64_t growth_tracker = 0;  // clean steps since the loss scale last changed (kept)
};

// Loss-scale update rule (PyTorch's GradScaler when dynamic).
struct LossScaleRule {
  bool dynamic = false;
  float backoff = 0.5f;
  float growth = 2.0f;
  std::uint64_t growth_interval = 2000;
};

// What the step's gradient sums are divided by.
enum class WindowDivisor : std::uint8_t { One, Samples, Elements, MicroBatches };

// Allocates zeroed counts on `device`.
Storage make_window_counts(Device device);
// Host copy of the counts (one device-to-host copy for CUDA).
WindowCounts read_window_counts(const Storage& counts);
// Overwrites the counts (host to device for CUDA): a distributed step's global counts.
void write_window_counts(Storage& counts, const WindowCounts& values);
// Starts a new window: every count to zero except growth_tracker.
void reset_window_counts(Storage& counts);

// t[1] (f32) *= factor (rounded once to f32 from the double product).
void scale_scalar(Tensor& t, double factor);

// One micro-batch's count (window_count_micro_batch's arguments for a micro-batch that cannot be
// dropped), for a kernel that does it at the end of its own launch (l1_loss_forward's tail), so
// that a captured micro-step has one node fewer.
struct WindowCountArgs {
  Storage* counts = nullptr;
  std::uint64_t samples = 0;
  std::uint64_t elements = 0;
  Tensor* loss_scale = nullptr;
  Tensor* inv_loss_scale = nullptr;
  LossScaleRule rule;
};
// Throws, as window_count_micro_batch would, unless `args` can be counted on `device`.
void check_window_count(const WindowCountArgs& args, Device device, const char* what);

// After a micro-batch's gradients were added (or, when `dropped` is given and raised, were
// not): a dropped micro-batch counts in `dropped` and, with a dynamic rule, backs the loss scale
// off (growth_tracker = 0); otherwise samples, elements and micro_batches grow. Always ends
// with inv_loss_scale = 1 / loss_scale. loss_scale and inv_loss_scale: f32 [1].
void window_count_micro_batch(Storage& counts, const NonFiniteFlag* dropped, std::uint64_t samples,
                              std::uint64_t elements, Tensor& loss_scale, Tensor& inv_loss_scale,
                              const LossScaleRule& rule);

// grad_scale = 1 / (d * *unscale) where d is the count `divisor` names (1 for One) and unscale
// (optional, f32 [1]) the loss scale the sums still carry; computed in double, rounded once.
// When d is 0 (every micro-batch dropped) grad_scale is 0 and `skip` is raised.
void window_grad_scale(const Storage& counts, WindowDivisor divisor, const Tensor* unscale,
                       Tensor& grad_scale, NonFiniteFlag& skip);

// What a step did, as the device has it, gathered by window_end_step so that the host reads it
// with one copy (one synchronisation per step instead of one per value).
struct WindowStepRecord {
  WindowCounts counts;
  float loss_scale = 0.0f;  // after the step's update
  float loss_sum = 0.0f;
  float loss_sum_comp = 0.0f;
  std::uint32_t skipped = 0;  // the skip flag's word
};
struct WindowRecordArgs {
  Storage* record = nullptr;              // make_window_step_record(), on the window's device
  const Tensor* loss_sum = nullptr;       // f32 [1]
  const Tensor* loss_sum_comp = nullptr;  // f32 [1]
  const NonFiniteFlag* skip = nullptr;
};
Storage make_window_step_record(Device device);
WindowStepRecord read_window_step_record(const Storage& record);  // one device-to-host copy

// After the optimizer step: with a dynamic rule, an `overflow` (optional, raised) backs the loss
// scale off; a step with no overflow and no dropped micro-batch counts as clean, and
// growth_interval clean steps in a row grow it. Then inv_loss_scale = 1 / loss_scale. With
// `record`, then the step's record is written (in the same launch).
void window_end_step(Storage& counts, const NonFiniteFlag* overflow, Tensor& loss_scale,
                     Tensor& inv_loss_scale, const LossScaleRule& rule,
                     const WindowRecordArgs* record = nullptr);

}  // namespace gradaccum
