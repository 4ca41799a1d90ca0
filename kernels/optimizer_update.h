// What the fused optimizer updates (SGD, AdamW) share on the host: the checks of the arguments
// every update has (param, grad, grad_comp, grad_scale, param_f16, skip_if) and of its f32 state
// buffers, the raw pointers handed to the CPU loops and the CUDA launchers, and the two entry
// points (one parameter, several) around an update's own rule. Private to kernels/: not part of
// the public API.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/elementwise_cpu.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum::detail {

// An f32 tensor of param's shape, on param's device (grad, grad_comp, a state buffer).
inline void check_f32_like_param(const char* op, const Tensor& t, const char* name,
                                 const Tensor& param) {
  check_defined(op, t, name);
  check_dtype_is(op, t, name, DType::f32);
  check_same_shape(op, t, name, param, "param");
  check_same_device(op, t, name, param, "param");
}

// The arguments every update has (Args: SgdUpdateArgs, AdamwUpdateArgs); throws naming the
// argument and what was expected.
template <typename Args>
void check_update_common(const char* op, const Args& args) {
  GA_CHECK(args.param != nullptr, op << ": param is required");
  GA_CHECK(args.grad != nullptr, op << ": grad is required");
  const Tensor& param = *args.param;
  check_defined(op, param, "param");
  check_dtype_is(op, param, "param", DType::f32);
  check_f32_like_param(op, *args.grad, "grad", param);
  if (args.grad_comp != nullptr) check_f32_like_param(op, *args.grad_comp, "grad_comp", param);
  if (args.grad_scale != nullptr) {
    check_scalar_f32(op, *args.grad_scale, "grad_scale", param, "param");
  }
  if (args.param_f16 != nullptr) {
    check_defined(op, *args.param_f16, "param_f16");
    check_dtype_is(op, *args.param_f16, "param_f16", DType::f16);
    check_same_shape(op, *args.param_f16, "param_f16", param, "param");
    check_same_device(op, *args.param_f16, "param_f16", param, "param");
  }
  if (args.skip_if != nullptr) {
    GA_CHECK(args.skip_if->device() == param.device(),
             op << ": expected the skip_if flag on " << device_name(param.device())
                << " (the device of param), got a flag on " << device_name(args.skip_if->device()));
  }
}

inline const float* data_or_null(const Tensor* t) {
  return t != nullptr ? t->data<float>() : nullptr;
}
inline float* data_or_null(Tensor* t) {
  return t != nullptr ? t->data<float>() : nullptr;
}
inline std::uint16_t* half_data_or_null(Tensor* t) {
  return t != nullptr ? t->data<std::uint16_t>() : nullptr;
}

// The pointers every update's CPU loop takes: the scale is read here, on the host.
struct CommonCpuPointers {
  float* param;
  const float* grad;
  const float* comp;
  float scale;
  bool scaled;
  std::uint16_t* param_f16;
};

template <typename Args>
CommonCpuPointers common_cpu_pointers(const Args& args) {
  const float* scale = data_or_null(args.grad_scale);
  return {args.param->template data<float>(),
          args.grad->template data<float>(),
          data_or_null(args.grad_comp),
          scale != nullptr ? *scale : 1.0f,
          scale != nullptr,
          half_data_or_null(args.param_f16)};
}

// The pointers every update's CUDA launcher takes (Pointers: derived from cuda::UpdatePointers,
// kernels/optimizer_update.cuh); the scale stays on the device.
template <typename Args, typename Pointers>
void fill_common_pointers(const Args& args, Pointers& p) {
  p.param = args.param->template data<float>();
  p.grad = args.grad->template data<float>();
  p.grad_comp = data_or_null(args.grad_comp);
  p.grad_scale = data_or_null(args.grad_scale);
  p.param_f16 = half_data_or_null(args.param_f16);
  p.skip_if = args.skip_if != nullptr ? args.skip_if->word() : nullptr;
  p.n = args.param->numel();
}

// The entry points of an update, around its rule: a struct Rule with
//   using Args = ...; using Hyper = ...;  // the public argument and hyper-parameter structs
//   using Scalars = ...;                  // what the update computes with (CPU and CUDA)
//   static void check_hyper(const char* op, const Hyper&);  // throw on bad input
//   static void check(const char* op, const Args&, const Hyper&);
//   static Scalars scalars(const Hyper&);
//   static CpuBody cpu_body(const Args&, const Scalars&);  // body(begin, end): elements
//                                                          // [begin, end) on the CPU
// and with CUDA
//   using Pointers = ...;  // the launcher's (derived from cuda::UpdatePointers)
//   static Pointers device_pointers(const Args&, const Scalars&);
//   launch(const Pointers&, const Scalars&), launch_multi(const Pointers*, int, const Scalars&)
//                          // one launch, one per eight parameters
// Everything is validated before anything runs.
template <typename Rule>
void run_update(const char* op, const typename Rule::Args& args,
                const typename Rule::Hyper& hyper) {
  Rule::check_hyper(op, hyper);
  Rule::check(op, args, hyper);
  const typename Rule::Scalars s = Rule::scalars(hyper);
  if (args.param->device() == Device::CPU) {
    if (args.skip_if != nullptr && *args.skip_if->word() != 0u) return;
    const auto body = Rule::cpu_body(args, s);
    parallel_chunks(args.param->numel(), [&body](std::int64_t b, std::int64_t e) {
      body(b, e);
      return false;
    });
    return;
  }
#if GRADACCUM_WITH_CUDA
  Rule::launch(Rule::device_pointers(args, s), s);
#else
  GA_FAIL(op << ": " << args.param->str() << " is on the CUDA device, but gradaccum was built "
             << "without CUDA");
#endif
}

// Several parameters with one set of hyper-parameters: on CUDA one launch per eight, on the CPU
// run_update(one_op) for each.
template <typename Rule>
void run_updates(const char* op, const char* one_op,
                 const std::vector<typename Rule::Args>& updates,
                 const typename Rule::Hyper& hyper) {
  Rule::check_hyper(op, hyper);
  bool cuda = !updates.empty();
  for (const typename Rule::Args& a : updates) {
    Rule::check(op, a, hyper);
    cuda = cuda && a.param->device() == Device::CUDA;
  }
#if GRADACCUM_WITH_CUDA
  if (cuda) {
    const typename Rule::Scalars s = Rule::scalars(hyper);
    std::vector<typename Rule::Pointers> ptrs;
    for (const typename Rule::Args& a : updates)
      ptrs.push_back(Rule::device_pointers(a, s));
    Rule::launch_multi(ptrs.data(), static_cast<int>(ptrs.size()), s);
    return;
  }
#endif
  for (const typename Rule::Args& a : updates)
    run_update<Rule>(one_op, a, hyper);
}

}  // namespace gradaccum::detail
