#include "kernels/sgd.h"

#include <cmath>
#include <cstdint>

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

}  // namespace

void sgd_update(const SgdUpdateArgs& args, const SgdHyper& hyper) {
  constexpr const char* op = "sgd_update";
  check_hyper(op, hyper);
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
  const bool momentum = hyper.momentum != 0.0f;
  if (momentum) {
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
  const Hyper h = to_hyper(hyper);
  const std::int64_t n = param.numel();
  float* buf = momentum ? args.momentum_buf->data<float>() : nullptr;
  std::uint16_t* f16 = args.param_f16 != nullptr ? args.param_f16->data<std::uint16_t>() : nullptr;
  const float* comp = args.grad_comp != nullptr ? args.grad_comp->data<float>() : nullptr;
  const float* scale = args.grad_scale != nullptr ? args.grad_scale->data<float>() : nullptr;
  if (param.device() == Device::CPU) {
    if (args.skip_if != nullptr && *args.skip_if->word() != 0u) return;
    const SgdCpu body{args.param->data<float>(),
                      grad.data<float>(),
                      comp,
                      scale != nullptr ? *scale : 1.0f,
                      scale != nullptr,
                      buf,
                      f16,
                      args.first_step,
                      h};
    detail::parallel_chunks(n, [&body](std::int64_t b, std::int64_t e) {
      body(b, e);
      return false;
    });
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::SgdPointers p;
  p.param = args.param->data<float>();
  p.grad = grad.data<float>();
  p.grad_comp = comp;
  p.grad_scale = scale;
  p.momentum_buf = buf;
  p.param_f16 = f16;
  p.skip_if = args.skip_if != nullptr ? args.skip_if->word() : nullptr;
  p.n = n;
  p.first_step = args.first_step;
  cuda::SgdKernelHyper kh;
  kh.neg_lr = h.neg_lr;
  kh.momentum = h.momentum;
  kh.damp_alpha = h.damp_alpha;
  kh.weight_decay = h.weight_decay;
  kh.nesterov = h.nesterov;
  cuda::sgd_update(p, kh);
#else
  GA_FAIL(op << ": " << param.str() << " is on the CUDA device, but gradaccum was built without "
             << "CUDA");
#endif
}

}  // namespace gradaccum
