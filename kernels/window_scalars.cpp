#include "kernels/window_scalars.h"

#include <cstring>

#include "core/cuda_device.h"
#include "kernels/window_scalars_rules.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/window_scalars.cuh"
#endif

namespace gradaccum {
namespace {

void check_scalar(const Tensor& t, const char* what) {
  check_dtype(t, DType::f32, what);
  GA_CHECK(t.numel() == 1, what << ": expected one f32 element, got " << t.str());
}

void check_counts(const Storage& counts, const char* what) {
  GA_CHECK(counts.data() != nullptr && counts.bytes() == sizeof(WindowCounts),
           what << ": expected window counts of " << sizeof(WindowCounts) << " bytes, got "
                << counts.bytes());
}

void check_same_device(Device a, Device b, const char* what, const char* other) {
  GA_CHECK(a == b, what << ": " << other << " is on " << device_name(b) << ", the window counts on "
                        << device_name(a));
}

#if !GRADACCUM_WITH_CUDA
[[noreturn]] void no_cuda(const char* what) {
  GA_FAIL(what << ": a CUDA tensor in a build without CUDA support");
}
#endif

const std::uint32_t* flag_word(const NonFiniteFlag* f) {
  return f ? f->word() : nullptr;
}

WindowCounts* counts_ptr(Storage& s) {
  return static_cast<WindowCounts*>(s.data());
}
const WindowCounts* counts_ptr(const Storage& s) {
  return static_cast<const WindowCounts*>(s.data());
}

// A zeroed T (a plain struct) in the memory of `device`, and its host copy.
template <typename T>
Storage make_zeroed(Device device) {
  Storage s(sizeof(T), device);
  if (device == Device::CPU) {
    *static_cast<T*>(s.data()) = T{};
  } else {
    detail::cuda_zero(s.data(), s.bytes());
  }
  return s;
}

template <typename T>
T read_struct(const Storage& s) {
  T out;
  if (s.device() == Device::CPU) {
    std::memcpy(&out, s.data(), sizeof out);
  } else {
    detail::cuda_copy(&out, s.data(), sizeof out, detail::CopyKind::DeviceToHost);
  }
  return out;
}

}  // namespace

Storage make_window_counts(Device device) {
  return make_zeroed<WindowCounts>(device);
}

WindowCounts read_window_counts(const Storage& counts) {
  check_counts(counts, "read_window_counts");
  return read_struct<WindowCounts>(counts);
}

void write_window_counts(Storage& counts, const WindowCounts& values) {
  check_counts(counts, "write_window_counts");
  if (counts.device() == Device::CPU) {
    std::memcpy(counts.data(), &values, sizeof values);
  } else {
    detail::cuda_copy(counts.data(), &values, sizeof values, detail::CopyKind::HostToDevice);
  }
}

void reset_window_counts(Storage& counts) {
  check_counts(counts, "reset_window_counts");
  if (counts.device() == Device::CPU) {
    window_rules::reset(counts_ptr(counts));
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::reset_window_counts(counts_ptr(counts));
#else
  no_cuda("reset_window_counts");
#endif
}

void scale_scalar(Tensor& t, double factor) {
  check_scalar(t, "scale_scalar");
  if (!t.is_cuda()) {
    window_rules::scale(t.data<float>(), factor);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::scale_scalar(t.data<float>(), factor);
#else
  no_cuda("scale_scalar");
#endif
}

void check_window_count(const WindowCountArgs& args, Device device, const char* what) {
  GA_CHECK(args.counts != nullptr && args.loss_scale != nullptr && args.inv_loss_scale != nullptr,
           what << ": the window count needs counts, loss_scale and inv_loss_scale");
  check_counts(*args.counts, what);
  check_scalar(*args.loss_scale, what);
  check_scalar(*args.inv_loss_scale, what);
  check_same_device(args.counts->device(), args.loss_scale->device(), what, "loss_scale");
  check_same_device(args.counts->device(), args.inv_loss_scale->device(), what, "inv_loss_scale");
  check_same_device(args.counts->device(), device, what, "the loss");
}

void window_count_micro_batch(Storage& counts, const NonFiniteFlag* dropped, std::uint64_t samples,
                              std::uint64_t elements, Tensor& loss_scale, Tensor& inv_loss_scale,
                              const LossScaleRule& rule) {
  const char* what = "window_count_micro_batch";
  check_window_count({&counts, samples, elements, &loss_scale, &inv_loss_scale, rule},
                     counts.device(), what);
  if (dropped) check_same_device(counts.device(), dropped->device(), what, "the dropped flag");
  if (counts.device() == Device::CPU) {
    window_rules::count_micro_batch(counts_ptr(counts), flag_word(dropped), samples, elements,
                                    loss_scale.data<float>(), inv_loss_scale.data<float>(), rule);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::window_count_micro_batch(counts_ptr(counts), flag_word(dropped), samples, elements,
                                 loss_scale.data<float>(), inv_loss_scale.data<float>(), rule);
#else
  no_cuda(what);
#endif
}

void window_grad_scale(const Storage& counts, WindowDivisor divisor, const Tensor* unscale,
                       Tensor& grad_scale, NonFiniteFlag& skip) {
  const char* what = "window_grad_scale";
  check_counts(counts, what);
  check_scalar(grad_scale, what);
  check_same_device(counts.device(), grad_scale.device(), what, "grad_scale");
  check_same_device(counts.device(), skip.device(), what, "the skip flag");
  if (unscale) {
    check_scalar(*unscale, what);
    check_same_device(counts.device(), unscale->device(), what, "unscale");
  }
  const float* u = unscale ? unscale->data<float>() : nullptr;
  if (counts.device() == Device::CPU) {
    window_rules::grad_scale(counts_ptr(counts), divisor, u, grad_scale.data<float>(), skip.word());
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::window_grad_scale(counts_ptr(counts), divisor, u, grad_scale.data<float>(), skip.word());
#else
  no_cuda(what);
#endif
}

Storage make_window_step_record(Device device) {
  return make_zeroed<WindowStepRecord>(device);
}

WindowStepRecord read_window_step_record(const Storage& record) {
  GA_CHECK(record.data() != nullptr && record.bytes() == sizeof(WindowStepRecord),
           "read_window_step_record: expected a record of " << sizeof(WindowStepRecord)
                                                            << " bytes, got " << record.bytes());
  return read_struct<WindowStepRecord>(record);
}

void window_end_step(Storage& counts, const NonFiniteFlag* overflow, Tensor& loss_scale,
                     Tensor& inv_loss_scale, const LossScaleRule& rule,
                     const WindowRecordArgs* record) {
  const char* what = "window_end_step";
  check_counts(counts, what);
  check_scalar(loss_scale, what);
  check_scalar(inv_loss_scale, what);
  check_same_device(counts.device(), loss_scale.device(), what, "loss_scale");
  check_same_device(counts.device(), inv_loss_scale.device(), what, "inv_loss_scale");
  if (overflow) check_same_device(counts.device(), overflow->device(), what, "the overflow flag");
  if (record != nullptr) {
    GA_CHECK(record->record != nullptr && record->loss_sum != nullptr &&
                 record->loss_sum_comp != nullptr && record->skip != nullptr,
             what << ": the step record needs its storage, loss_sum, loss_sum_comp and skip flag");
    GA_CHECK(record->record->bytes() == sizeof(WindowStepRecord),
             what << ": expected a step record of " << sizeof(WindowStepRecord) << " bytes, got "
                  << record->record->bytes());
    check_scalar(*record->loss_sum, what);
    check_scalar(*record->loss_sum_comp, what);
    check_same_device(counts.device(), record->record->device(), what, "the step record");
    check_same_device(counts.device(), record->loss_sum->device(), what, "loss_sum");
    check_same_device(counts.device(), record->loss_sum_comp->device(), what, "loss_sum_comp");
    check_same_device(counts.device(), record->skip->device(), what, "the skip flag");
  }
  if (counts.device() == Device::CPU) {
    window_rules::end_step(counts_ptr(counts), flag_word(overflow), loss_scale.data<float>(),
                           inv_loss_scale.data<float>(), rule);
    if (record != nullptr) {
      window_rules::record_step(counts_ptr(counts), loss_scale.data<float>(),
                                record->loss_sum->data<float>(),
                                record->loss_sum_comp->data<float>(), record->skip->word(),
                                static_cast<WindowStepRecord*>(record->record->data()));
    }
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::StepRecordPointers r;
  if (record != nullptr) {
    r.record = static_cast<WindowStepRecord*>(record->record->data());
    r.loss_sum = record->loss_sum->data<float>();
    r.loss_sum_comp = record->loss_sum_comp->data<float>();
    r.skip = record->skip->word();
  }
  cuda::window_end_step(counts_ptr(counts), flag_word(overflow), loss_scale.data<float>(),
                        inv_loss_scale.data<float>(), rule, r);
#else
  no_cuda(what);
#endif
}

}  // namespace gradaccum
