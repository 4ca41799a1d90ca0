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

}  // namespace

Storage make_window_counts(Device device) {
  Storage s(sizeof(WindowCounts), device);
  if (device == Device::CPU) {
    *counts_ptr(s) = WindowCounts{};
  } else {
    detail::cuda_zero(s.data(), s.bytes());
  }
  return s;
}

WindowCounts read_window_counts(const Storage& counts) {
  check_counts(counts, "read_window_counts");
  WindowCounts out;
  if (counts.device() == Device::CPU) {
    std::memcpy(&out, counts.data(), sizeof out);
  } else {
    detail::cuda_copy(&out, counts.data(), sizeof out, detail::CopyKind::DeviceToHost);
  }
  return out;
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

void window_end_step(Storage& counts, const NonFiniteFlag* overflow, Tensor& loss_scale,
                     Tensor& inv_loss_scale, const LossScaleRule& rule) {
  const char* what = "window_end_step";
  check_counts(counts, what);
  check_scalar(loss_scale, what);
  check_scalar(inv_loss_scale, what);
  check_same_device(counts.device(), loss_scale.device(), what, "loss_scale");
  check_same_device(counts.device(), inv_loss_scale.device(), what, "inv_loss_scale");
  if (overflow) check_same_device(counts.device(), overflow->device(), what, "the overflow flag");
  if (counts.device() == Device::CPU) {
    window_rules::end_step(counts_ptr(counts), flag_word(overflow), loss_scale.data<float>(),
                           inv_loss_scale.data<float>(), rule);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::window_end_step(counts_ptr(counts), flag_word(overflow), loss_scale.data<float>(),
                        inv_loss_scale.data<float>(), rule);
#else
  no_cuda(what);
#endif
}

}  // namespace gradaccum
