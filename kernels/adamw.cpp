#include "kernels/adamw.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/half.h"
#include "kernels/elementwise_cpu.h"
#include "kernels/adamw.cuh"  // plain C++: its scalars serve the CPU loop too
#include "kernels/optimizer_update.h"

namespace gradaccum {
namespace {

using AdamwScalars = cuda::AdamwKernelHyper;

// The scalars as the update uses them: what PyTorch's Python code computes in double from the
// hyper-parameters and the step, and its kernels then cast to float (kernels/adamw.h).
AdamwScalars to_scalars(const AdamwHyper& h) {
  const double step = static_cast<double>(h.step);  // PyTorch: step_t.item(), a Python float
  const double bias_correction1 = 1.0 - std::pow(h.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(h.beta2, step);
  const double step_size = h.lr / bias_correction1;
  return {static_cast<float>(1.0 - h.lr * h.weight_decay),
          static_cast<float>(h.beta1),
          static_cast<float>(1.0 - h.beta1),
          static_cast<float>(h.beta2),
          static_cast<float>(1.0 - h.beta2),
          static_cast<float>(-step_size),
          static_cast<float>(std::sqrt(bias_correction2)),
          static_cast<float>(h.eps),
          h.amsgrad};
}

// torch.maximum: the larger, NaN when either is NaN (the device kernel's rule too).
inline float maximum_nan(float a, float b) {
  return (a > b || a != a) ? a : b;
}

// PyTorch's rule, one f32 rounding per operation, exactly as the CUDA kernel (kernels/adamw.cu).
struct AdamwCpu {
  detail::CommonCpuPointers c;
  float* exp_avg;
  float* exp_avg_sq;
  float* max_exp_avg_sq;
  AdamwScalars h;

  void operator()(std::int64_t b, std::int64_t e) const {
    for (std::int64_t i = b; i < e; ++i) {
      float g = c.grad[i];
      if (c.comp != nullptr) g = g + c.comp[i];
      if (c.scaled) g = g * c.scale;
      float p = c.param[i] * h.decay;
      float m = exp_avg[i] * h.beta1;
      m = m + h.one_minus_beta1 * g;
      float v = exp_avg_sq[i] * h.beta2;
      v = v + h.one_minus_beta2 * g * g;  // (omb2 * g) * g, left to right as addcmul_
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      float s = v;
      if (h.amsgrad) {
        s = maximum_nan(max_exp_avg_sq[i], v);
        max_exp_avg_sq[i] = s;
      }
      float d = std::sqrt(s);
      d = d / h.bc2_sqrt;
      d = d + h.eps;
      p = p + h.neg_step_size * m / d;  // (value * m) / d, left to right as addcdiv_
      c.param[i] = p;
      if (c.param_f16 != nullptr) c.param_f16[i] = float_to_half_bits(p);
    }
  }
};

void check_hyper(const char* op, const AdamwHyper& h) {
  GA_CHECK(std::isfinite(h.lr) && h.lr >= 0.0,
           op << ": invalid learning rate " << h.lr << " (expected a finite lr >= 0)");
  GA_CHECK(std::isfinite(h.eps) && h.eps >= 0.0,
           op << ": invalid eps " << h.eps << " (expected a finite eps >= 0)");
  GA_CHECK(h.beta1 >= 0.0 && h.beta1 < 1.0,
           op << ": invalid beta1 " << h.beta1 << " (expected 0 <= beta1 < 1)");
  GA_CHECK(h.beta2 >= 0.0 && h.beta2 < 1.0,
           op << ": invalid beta2 " << h.beta2 << " (expected 0 <= beta2 < 1)");
  GA_CHECK(std::isfinite(h.weight_decay) && h.weight_decay >= 0.0,
           op << ": invalid weight_decay " << h.weight_decay
              << " (expected a finite weight_decay >= 0)");
  GA_CHECK(h.step >= 1, op << ": invalid step " << h.step << " (expected the step number, >= 1)");
}

// Validates one update; throws naming the argument and what was expected.
void check_update(const char* op, const AdamwUpdateArgs& args, const AdamwHyper& hyper) {
  detail::check_update_common(op, args);
  const Tensor& param = *args.param;
  GA_CHECK(args.exp_avg != nullptr, op << ": exp_avg is required");
  detail::check_f32_like_param(op, *args.exp_avg, "exp_avg", param);
  GA_CHECK(args.exp_avg_sq != nullptr, op << ": exp_avg_sq is required");
  detail::check_f32_like_param(op, *args.exp_avg_sq, "exp_avg_sq", param);
  if (hyper.amsgrad) {
    GA_CHECK(args.max_exp_avg_sq != nullptr, op << ": amsgrad needs a max_exp_avg_sq, got none");
    detail::check_f32_like_param(op, *args.max_exp_avg_sq, "max_exp_avg_sq", param);
  }
}

// The rule of detail::run_update (kernels/optimizer_update.h).
struct AdamwRule {
  using Args = AdamwUpdateArgs;
  using Hyper = AdamwHyper;
  using Scalars = AdamwScalars;

  static void check_hyper(const char* op, const AdamwHyper& h) { ::gradaccum::check_hyper(op, h); }
  static void check(const char* op, const AdamwUpdateArgs& args, const AdamwHyper& h) {
    check_update(op, args, h);
  }
  static Scalars scalars(const AdamwHyper& h) { return to_scalars(h); }

  static AdamwCpu cpu_body(const AdamwUpdateArgs& args, const Scalars& h) {
    return {detail::common_cpu_pointers(args), args.exp_avg->data<float>(),
            args.exp_avg_sq->data<float>(),
            h.amsgrad ? args.max_exp_avg_sq->data<float>() : nullptr, h};
  }

#if GRADACCUM_WITH_CUDA
  using Pointers = cuda::AdamwPointers;
  static Pointers device_pointers(const AdamwUpdateArgs& args, const Scalars& h) {
    cuda::AdamwPointers p;
    detail::fill_common_pointers(args, p);
    p.exp_avg = args.exp_avg->data<float>();
    p.exp_avg_sq = args.exp_avg_sq->data<float>();
    p.max_exp_avg_sq = h.amsgrad ? args.max_exp_avg_sq->data<float>() : nullptr;
    return p;
  }
  static constexpr auto launch = &cuda::adamw_update;
  static constexpr auto launch_multi = &cuda::adamw_update_multi;
#endif
};

}  // namespace

void adamw_update(const AdamwUpdateArgs& args, const AdamwHyper& hyper) {
  detail::run_update<AdamwRule>("adamw_update", args, hyper);
}

void adamw_update(const std::vector<AdamwUpdateArgs>& updates, const AdamwHyper& hyper) {
  detail::run_updates<AdamwRule>("adamw_update (several parameters)", "adamw_update", updates,
                                 hyper);
}

}  // namespace gradaccum
