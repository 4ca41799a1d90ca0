#include "kernels/sgd.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/half.h"
#include "kernels/elementwise_cpu.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/sgd.cuh"
#endif

namespace gradaccum {
namespace {

// The hyper-parameters as the update uses them: PyTorch passes -lr and 1 - dampening (computed
// in Python, i.e. in double) as the alpha of add_, converted to float.
struct Hyper {
  float neg_lr;
  float momentum;
  float damp_alpha;
  float weight_decay;
  bool nesterov;
};

Hyper to_hyper(const SgdHyper& h) {
  return {-h.lr, h.momentum, static_cast<float>(1.0 - static_cast<double>(h.dampening)),
          h.weight_decay, h.nesterov};
}

// PyTorch's rule, one f32 rounding per operation, exactly as the CUDA kernel (kernels/sgd.cu).
struct SgdCpu {
  float* param;
  const float* grad;
  const float* comp;
  float scale;
  bool scaled;
  float* buf;
  std::uint16_t* param_f16;
  bool first_step;
  Hyper h;

  void operator()(std::int64_t b, std::int64_t e) const {
    const bool momentum = h.momentum != 0.0f;
    for (std::int64_t i = b; i < e; ++i) {
      float g = grad[i];
      if (comp != nullptr) g = g + comp[i];
      if (scaled) g = g * scale;
      float p = param[i];
      if (h.weight_decay != 0.0f) g = g + h.weight_decay * p;
      if (momentum) {
        float m;
        if (first_step) {
          m = g;
        } else {
          m = buf[i] * h.momentum;
          m = m + h.damp_alpha * g;
        }
        buf[i] = m;
        g = h.nesterov ? g + h.momentum * m : m;
      }
      p = p + h.neg_lr * g;
      param[i] = p;
      if (param_f16 != nullptr) param_f16[i] = float_to_half_bits(p);
    }
  }
};

void check_hyper(const char* op, const SgdHyper& h) {
  GA_CHECK(std::isfinite(h.lr) && h.lr >= 0.0f,
           op << ": expected a finite learning rate >= 0, got " << h.lr);
  GA_CHECK(std::isfinite(h.momentum) && h.momentum >= 0.0f,
           op << ": expected a finite momentum >= 0, got " << h.momentum);
  GA_CHECK(std::isfinite(h.dampening), op << ": expected a finite dampening, got " << h.dampening);
  GA_CHECK(std::isfinite(h.weight_decay) && h.weight_decay >= 0.0f,
           op << ": expected a finite weight_decay >= 0, got " << h.weight_decay);
  GA_CHECK(!h.nesterov || (h.momentum > 0.0f && h.dampening == 0.0f),
           op << ": nesterov momentum requires momentum > 0 and zero dampening, got momentum "
              << h.momentum << ", dampening " << h.dampening);
}

// Validates one update; throws naming the argument and what was expected.
void check_update(const char* op, const SgdUpdateArgs& args, const SgdHyper& hyper) {
  GA_CHECK(args.param != nullptr, op << ": param is required");
  GA_CHECK(args.grad != nullptr, op << ": grad is required");
  const Tensor& param = *args.param;
  detail::check_defined(op, param, "param");
  detail::check_dtype_is(op, param, "param", DType::f32);
  const Tensor& grad = *args.grad;
  detail::check_defined(op, grad, "grad");
  detail::check_dtype_is(op, grad, "grad", DType::f32);
  detail::check_same_shape(op, grad, "grad", param, "param");
  detail::check_same_device(op, grad, "grad", param, "param");
  if (args.grad_comp != nullptr) {
    detail::check_defined(op, *args.grad_comp, "grad_comp");
    detail::check_dtype_is(op, *args.grad_comp, "grad_comp", DType::f32);
    detail::check_same_shape(op, *args.grad_comp, "grad_comp", param, "param");
    detail::check_same_device(op, *args.grad_comp, "grad_comp", param, "param");
  }
  if (args.grad_scale != nullptr) {
    detail::check_scalar_f32(op, *args.grad_scale, "grad_scale", param, "param");
  }
  if (hyper.momentum != 0.0f) {
    GA_CHECK(args.momentum_buf != nullptr,
             op << ": momentum " << hyper.momentum << " needs a momentum_buf, got none");
    detail::check_defined(op, *args.momentum_buf, "momentum_buf");
    detail::check_dtype_is(op, *args.momentum_buf, "momentum_buf", DType::f32);
    detail::check_same_shape(op, *args.momentum_buf, "momentum_buf", param, "param");
    detail::check_same_device(op, *args.momentum_buf, "momentum_buf", param, "param");
  }
  if (args.param_f16 != nullptr) {
    detail::check_defined(op, *args.param_f16, "param_f16");
    detail::check_dtype_is(op, *args.param_f16, "param_f16", DType::f16);
    detail::check_same_shape(op, *args.param_f16, "param_f16", param, "param");
    detail::check_same_device(op, *args.param_f16, "param_f16", param, "param");
  }
  if (args.skip_if != nullptr) {
    GA_CHECK(args.skip_if->device() == param.device(),
             op << ": expected the skip_if flag on " << device_name(param.device())
                << " (the device of param), got a flag on " << device_name(args.skip_if->device()));
  }
}

const float* data_or_null(const Tensor* t) {
  return t != nullptr ? t->data<float>() : nullptr;
}

void update_cpu(const SgdUpdateArgs& args, const Hyper& h) {
  if (args.skip_if != nullptr && *args.skip_if->word() != 0u) return;
  const float* scale = data_or_null(args.grad_scale);
  const SgdCpu body{args.param->data<float>(),
                    args.grad->data<float>(),
                    data_or_null(args.grad_comp),
                    scale != nullptr ? *scale : 1.0f,
                    scale != nullptr,
                    h.momentum != 0.0f ? args.momentum_buf->data<float>() : nullptr,
                    args.param_f16 != nullptr ? args.param_f16->data<std::uint16_t>() : nullptr,
                    args.first_step,
                    h};
  detail::parallel_chunks(args.param->numel(), [&body](std::int64_t b, std::int64_t e) {
    body(b, e);
    return false;
  });
}

#if GRADACCUM_WITH_CUDA
cuda::SgdPointers device_pointers(const SgdUpdateArgs& args, const Hyper& h) {
  cuda::SgdPointers p;
  p.param = args.param->data<float>();
  p.grad = args.grad->data<float>();
  p.grad_comp = data_or_null(args.grad_comp);
  p.grad_scale = data_or_null(args.grad_scale);
  p.momentum_buf = h.momentum != 0.0f ? args.momentum_buf->data<float>() : nullptr;
  p.param_f16 = args.param_f16 != nullptr ? args.param_f16->data<std::uint16_t>() : nullptr;
  p.skip_if = args.skip_if != nullptr ? args.skip_if->word() : nullptr;
  p.n = args.param->numel();
  p.first_step = args.first_step;
  return p;
}

cuda::SgdKernelHyper kernel_hyper(const Hyper& h) {
  cuda::SgdKernelHyper kh;
  kh.neg_lr = h.neg_lr;
  kh.momentum = h.momentum;
  kh.damp_alpha = h.damp_alpha;
  kh.weight_decay = h.weight_decay;
  kh.nesterov = h.nesterov;
  return kh;
}
#endif

}  // namespace

void sgd_update(const SgdUpdateArgs& args, const SgdHyper& hyper) {
  constexpr const char* op = "sgd_update";
  check_hyper(op, hyper);
  check_update(op, args, hyper);
  const Hyper h = to_hyper(hyper);
  if (args.param->device() == Device::CPU) {
    update_cpu(args, h);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::sgd_update(device_pointers(args, h), kernel_hyper(h));
#else
  GA_FAIL(op << ": " << args.param->str() << " is on the CUDA device, but gradaccum was built "
             << "without CUDA");
#endif
}

void sgd_update(const std::vector<SgdUpdateArgs>& updates, const SgdHyper& hyper) {
  constexpr const char* op = "sgd_update (several parameters)";
  check_hyper(op, hyper);
  bool cuda = !updates.empty();
  for (const SgdUpdateArgs& a : updates) {
    check_update(op, a, hyper);
    cuda = cuda && a.param->device() == Device::CUDA;
  }
  const Hyper h = to_hyper(hyper);
#if GRADACCUM_WITH_CUDA
  if (cuda) {
    std::vector<cuda::SgdPointers> ptrs;
    for (const SgdUpdateArgs& a : updates)
      ptrs.push_back(device_pointers(a, h));
    cuda::sgd_update_multi(ptrs.data(), static_cast<int>(ptrs.size()), kernel_hyper(h));
    return;
  }
#endif
  for (const SgdUpdateArgs& a : updates)
    sgd_update(a, hyper);
}

}  // namespace gradaccum
