#include "kernels/sgd.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/half.h"
#include "kernels/elementwise_cpu.h"
#include "kernels/optimizer_update.h"
#include "kernels/sgd.cuh"  // plain C++: its scalars serve the CPU loop too

namespace gradaccum {
namespace {

using SgdScalars = cuda::SgdKernelHyper;

// The hyper-parameters as the update uses them: PyTorch passes -lr and 1 - dampening (computed
// in Python, i.e. in double) as the alpha of add_, converted to float.
SgdScalars to_scalars(const SgdHyper& h) {
  return {-h.lr, h.momentum, static_cast<float>(1.0 - static_cast<double>(h.dampening)),
          h.weight_decay, h.nesterov};
}

// PyTorch's rule, one f32 rounding per operation, exactly as the CUDA kernel (kernels/sgd.cu).
struct SgdCpu {
  detail::CommonCpuPointers c;
  float* buf;
  bool first_step;
  SgdScalars h;

  void operator()(std::int64_t b, std::int64_t e) const {
    const bool momentum = h.momentum != 0.0f;
    for (std::int64_t i = b; i < e; ++i) {
      float g = c.grad[i];
      if (c.comp != nullptr) g = g + c.comp[i];
      if (c.scaled) g = g * c.scale;
      float p = c.param[i];
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
      c.param[i] = p;
      if (c.param_f16 != nullptr) c.param_f16[i] = float_to_half_bits(p);
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
  detail::check_update_common(op, args);
  if (hyper.momentum != 0.0f) {
    GA_CHECK(args.momentum_buf != nullptr,
             op << ": momentum " << hyper.momentum << " needs a momentum_buf, got none");
    detail::check_f32_like_param(op, *args.momentum_buf, "momentum_buf", *args.param);
  }
}

// The rule of detail::run_update (kernels/optimizer_update.h).
struct SgdRule {
  using Args = SgdUpdateArgs;
  using Hyper = SgdHyper;
  using Scalars = SgdScalars;

  static void check_hyper(const char* op, const SgdHyper& h) { ::gradaccum::check_hyper(op, h); }
  static void check(const char* op, const SgdUpdateArgs& args, const SgdHyper& h) {
    check_update(op, args, h);
  }
  static Scalars scalars(const SgdHyper& h) { return to_scalars(h); }

  static SgdCpu cpu_body(const SgdUpdateArgs& args, const Scalars& h) {
    return {detail::common_cpu_pointers(args),
            h.momentum != 0.0f ? args.momentum_buf->data<float>() : nullptr, args.first_step, h};
  }

#if GRADACCUM_WITH_CUDA
  using Pointers = cuda::SgdPointers;
  static Pointers device_pointers(const SgdUpdateArgs& args, const Scalars& h) {
    cuda::SgdPointers p;
    detail::fill_common_pointers(args, p);
    p.momentum_buf = h.momentum != 0.0f ? args.momentum_buf->data<float>() : nullptr;
    p.first_step = args.first_step;
    return p;
  }
  static constexpr auto launch = &cuda::sgd_update;
  static constexpr auto launch_multi = &cuda::sgd_update_multi;
#endif
};

}  // namespace

void sgd_update(const SgdUpdateArgs& args, const SgdHyper& hyper) {
  detail::run_update<SgdRule>("sgd_update", args, hyper);
}

void sgd_update(const std::vector<SgdUpdateArgs>& updates, const SgdHyper& hyper) {
  detail::run_updates<SgdRule>("sgd_update (several parameters)", "sgd_update", updates, hyper);
}

}  // namespace gradaccum
