#include "kernels/batch_norm.h"

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>

#include "core/half.h"
#include "kernels/batch_norm_rules.h"
#include "kernels/elementwise_cpu.h"
#include "kernels/exact_sum_rules.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/batch_norm.cuh"
#endif

namespace gradaccum {
namespace {

// ---- checks ----------------------------------------------------------------------------------

// x [N, C] of the model dtype; returns C.
std::int64_t check_rows(const char* op, const Tensor& x, const char* name) {
  detail::check_defined(op, x, name);
  GA_CHECK(x.rank() == 2, op << ": expected " << name << " of shape [N, C], got " << x.str());
  GA_CHECK(x.dtype() == DType::f32 || x.dtype() == DType::f16,
           op << ": expected " << name << " of dtype f32 or f16, got " << x.str());
  return x.shape()[1];
}

// An f32 [C] vector on x's device.
void check_channels(const char* op, const Tensor& t, const char* name, const Tensor& x) {
  detail::check_defined(op, t, name);
  detail::check_dtype_is(op, t, name, DType::f32);
  GA_CHECK(t.rank() == 1 && t.shape()[0] == x.shape()[1],
           op << ": expected " << name << " of shape [" << x.shape()[1] << "] (the channels of "
              << x.str() << "), got " << t.str());
  detail::check_same_device(op, t, name, x, "x");
}

void check_sum(const char* op, const ExactSum& s, const char* name, const Tensor& x) {
  GA_CHECK(s.defined(), op << ": " << name << " is an undefined accumulator");
  GA_CHECK(s.shape() == Shape({x.shape()[1]}) && s.device() == x.device(),
           op << ": expected " << name << " an exact sum of shape [" << x.shape()[1] << "] on "
              << device_name(x.device()) << ", got " << s.shape().str() << " on "
              << device_name(s.device()));
}

void check_flag(const char* op, const NonFiniteFlag* f, Device d) {
  GA_CHECK(f == nullptr || f->device() == d, op << ": expected the nonfinite flag on "
                                                << device_name(d) << ", got one on "
                                                << device_name(f->device()));
}

void check_count(const char* op, std::int64_t count) {
  GA_CHECK(count >= 1, op << ": expected a count of rows >= 1, got " << count);
}

#if !GRADACCUM_WITH_CUDA
[[noreturn]] void no_cuda(const char* op) {
  GA_FAIL(op << ": a CUDA tensor in a build without CUDA support");
}
#endif

// ---- CPU -------------------------------------------------------------------------------------

inline float to_f32(float v) {
  return v;
}
inline float to_f32(std::uint16_t h) {
  return half_bits_to_float(h);
}
inline void store_f32(float v, float& out) {
  out = v;
}
inline void store_f32(float v, std::uint16_t& out) {
  out = float_to_half_bits(v);
}
// Calls f with a value of x's element type (float, or uint16_t for f16 bits).
template <typename F>
void with_element_type(const Tensor& x, F&& f) {
  if (x.dtype() == DType::f32) {
    f(float{});
  } else {
    f(std::uint16_t{});
  }
}

// Adds x exactly to limb j of channel c at limbs[j * channels + c]; false for a non-finite x.
inline bool add_exact(std::uint64_t* limbs, std::int64_t c, std::int64_t channels, float x) {
  if (!exact_rules::finite(x)) return false;
  exact_rules::add(limbs + c, channels, x);
  return true;
}

std::uint64_t* limbs_of(ExactSum& s) {
  return static_cast<std::uint64_t*>(s.limbs().data());
}

const float* data_or_null(const Tensor* t) {
  return t != nullptr ? t->data<float>() : nullptr;
}

float nan_f32() {
  return std::numeric_limits<float>::quiet_NaN();
}

#if GRADACCUM_WITH_CUDA
cuda::BatchNormRows device_rows(const Tensor& x, const Tensor* dy, const Tensor* mean,
                                const Tensor* invstd) {
  cuda::BatchNormRows r;
  r.x = x.raw_data();
  r.dy = dy != nullptr ? dy->raw_data() : nullptr;
  r.f16 = x.dtype() == DType::f16;
  r.rows = x.shape()[0];
  r.channels = x.shape()[1];
  r.mean = data_or_null(mean);
  r.invstd = data_or_null(invstd);
  return r;
}
#endif

// Rounds an exact [C] sum to a fresh f32 tensor.
Tensor rounded(const ExactSum& s) {
  Tensor out = Tensor::empty(s.shape(), DType::f32, s.device());
  s.round_to(out);
  return out;
}

}  // namespace

void batch_norm_sum_rows(const Tensor& x, const Tensor* mean, BatchNormRowSum what, ExactSum& sum,
                         NonFiniteFlag* nonfinite) {
  constexpr const char* op = "batch_norm_sum_rows";
  const std::int64_t channels = check_rows(op, x, "x");
  check_sum(op, sum, "sum", x);
  check_flag(op, nonfinite, x.device());
  const bool deviations = what == BatchNormRowSum::SquaredDeviations;
  if (deviations) {
    GA_CHECK(mean != nullptr, op << ": squared deviations need the mean");
    check_channels(op, *mean, "mean", x);
  }
  const std::int64_t rows = x.shape()[0];
  if (x.device() == Device::CPU) {
    std::uint64_t* limbs = limbs_of(sum);
    const float* m = deviations ? mean->data<float>() : nullptr;
    bool ok = true;
    with_element_type(x, [&](auto tag) {
      const auto* xp = x.data<decltype(tag)>();
      for (std::int64_t n = 0; n < rows; ++n) {
        for (std::int64_t c = 0; c < channels; ++c) {
          const float v = to_f32(xp[n * channels + c]);
          ok = add_exact(limbs, c, channels,
                         deviations ? bn_rules::squared_deviation(v, m[c]) : v) &&
               ok;
        }
      }
    });
    if (!ok && nonfinite != nullptr) nonfinite->set(true);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::batch_norm_sum_rows(
      device_rows(x, nullptr, deviations ? mean : nullptr, nullptr),
      deviations ? cuda::BatchNormSumKind::SquaredDeviations : cuda::BatchNormSumKind::Values,
      limbs_of(sum), nullptr, nonfinite != nullptr ? nonfinite->word() : nullptr);
#else
  no_cuda(op);
#endif
}

void batch_norm_sum_backward(const Tensor& dy, const Tensor& x, const Tensor& mean,
                             const Tensor& invstd, ExactSum& sum_dy, ExactSum& sum_dy_xhat,
                             NonFiniteFlag* nonfinite) {
  constexpr const char* op = "batch_norm_sum_backward";
  const std::int64_t channels = check_rows(op, x, "x");
  check_rows(op, dy, "dy");
  detail::check_same_shape(op, dy, "dy", x, "x");
  detail::check_same_dtype(op, dy, "dy", x, "x");
  detail::check_same_device(op, dy, "dy", x, "x");
  check_channels(op, mean, "mean", x);
  check_channels(op, invstd, "invstd", x);
  check_sum(op, sum_dy, "sum_dy", x);
  check_sum(op, sum_dy_xhat, "sum_dy_xhat", x);
  check_flag(op, nonfinite, x.device());
  const std::int64_t rows = x.shape()[0];
  if (x.device() == Device::CPU) {
    std::uint64_t* a = limbs_of(sum_dy);
    std::uint64_t* b = limbs_of(sum_dy_xhat);
    const float* m = mean.data<float>();
    const float* s = invstd.data<float>();
    bool ok = true;
    with_element_type(x, [&](auto tag) {
      const auto* xp = x.data<decltype(tag)>();
      const auto* gp = dy.data<decltype(tag)>();
      for (std::int64_t n = 0; n < rows; ++n) {
        for (std::int64_t c = 0; c < channels; ++c) {
          const std::int64_t i = n * channels + c;
          const float g = to_f32(gp[i]);
          ok = add_exact(a, c, channels, g) && ok;
          ok = add_exact(b, c, channels, g * bn_rules::xhat(to_f32(xp[i]), m[c], s[c])) && ok;
        }
      }
    });
    if (!ok && nonfinite != nullptr) nonfinite->set(true);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::batch_norm_sum_rows(device_rows(x, &dy, &mean, &invstd), cuda::BatchNormSumKind::Backward,
                            limbs_of(sum_dy), limbs_of(sum_dy_xhat),
                            nonfinite != nullptr ? nonfinite->word() : nullptr);
#else
  no_cuda(op);
#endif
}

void batch_norm_mean(const ExactSum& sum_x, std::int64_t count, const NonFiniteFlag* nonfinite,
                     Tensor& mean) {
  constexpr const char* op = "batch_norm_mean";
  check_count(op, count);
  GA_CHECK(sum_x.defined() && sum_x.shape().rank() == 1, op << ": expected an exact [C] sum");
  detail::check_defined(op, mean, "mean");
  detail::check_dtype_is(op, mean, "mean", DType::f32);
  GA_CHECK(mean.shape() == sum_x.shape() && mean.device() == sum_x.device(),
           op << ": expected mean of shape " << sum_x.shape().str() << " on "
              << device_name(sum_x.device()) << ", got " << mean.str());
  check_flag(op, nonfinite, mean.device());
  Tensor sum = rounded(sum_x);
  const auto n = static_cast<float>(count);
  if (mean.device() == Device::CPU) {
    const bool bad = nonfinite != nullptr && nonfinite->raised();
    const float* s = sum.data<float>();
    float* m = mean.data<float>();
    for (std::int64_t c = 0; c < mean.numel(); ++c)
      m[c] = bad ? nan_f32() : s[c] / n;
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::BatchNormChannelArgs a;
  a.in0 = sum.data<float>();
  a.out0 = mean.data<float>();
  a.channels = mean.numel();
  a.count = n;
  a.nonfinite = nonfinite != nullptr ? nonfinite->word() : nullptr;
  cuda::batch_norm_channels(cuda::BatchNormChannelOp::Mean, a);
#else
  no_cuda(op);
#endif
}

void batch_norm_variance(const ExactSum& sum_sq, std::int64_t count, float eps,
                         const NonFiniteFlag* nonfinite, Tensor& var, Tensor& invstd) {
  constexpr const char* op = "batch_norm_variance";
  check_count(op, count);
  GA_CHECK(std::isfinite(eps) && eps >= 0.0f, op << ": expected a finite eps >= 0, got " << eps);
  GA_CHECK(sum_sq.defined() && sum_sq.shape().rank() == 1, op << ": expected an exact [C] sum");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&var, &invstd}) {
    detail::check_defined(op, *t, "var/invstd");
    detail::check_dtype_is(op, *t, "var/invstd", DType::f32);
    GA_CHECK(t->shape() == sum_sq.shape() && t->device() == sum_sq.device(),
             op << ": expected var and invstd of shape " << sum_sq.shape().str() << " on "
                << device_name(sum_sq.device()) << ", got " << t->str());
  }
  check_flag(op, nonfinite, var.device());
  Tensor sum = rounded(sum_sq);
  const auto n = static_cast<float>(count);
  if (var.device() == Device::CPU) {
    const bool bad = nonfinite != nullptr && nonfinite->raised();
    const float* s = sum.data<float>();
    float* v = var.data<float>();
    float* r = invstd.data<float>();
    for (std::int64_t c = 0; c < var.numel(); ++c) {
      v[c] = bad ? nan_f32() : s[c] / n;
      r[c] = bn_rules::invstd(v[c], eps);
    }
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::BatchNormChannelArgs a;
  a.in0 = sum.data<float>();
  a.out0 = var.data<float>();
  a.out1 = invstd.data<float>();
  a.channels = var.numel();
  a.count = n;
  a.eps = eps;
  a.nonfinite = nonfinite != nullptr ? nonfinite->word() : nullptr;
  cuda::batch_norm_channels(cuda::BatchNormChannelOp::Variance, a);
#else
  no_cuda(op);
#endif
}

void batch_norm_invstd(const Tensor& var, float eps, Tensor& invstd) {
  constexpr const char* op = "batch_norm_invstd";
  GA_CHECK(std::isfinite(eps) && eps >= 0.0f, op << ": expected a finite eps >= 0, got " << eps);
  detail::check_defined(op, var, "var");
  detail::check_dtype_is(op, var, "var", DType::f32);
  detail::check_defined(op, invstd, "invstd");
  detail::check_dtype_is(op, invstd, "invstd", DType::f32);
  detail::check_same_shape(op, invstd, "invstd", var, "var");
  detail::check_same_device(op, invstd, "invstd", var, "var");
  if (var.device() == Device::CPU) {
    const float* v = var.data<float>();
    float* r = invstd.data<float>();
    for (std::int64_t c = 0; c < var.numel(); ++c)
      r[c] = bn_rules::invstd(v[c], eps);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::BatchNormChannelArgs a;
  a.in0 = var.data<float>();
  a.out1 = invstd.data<float>();
  a.channels = var.numel();
  a.eps = eps;
  cuda::batch_norm_channels(cuda::BatchNormChannelOp::Invstd, a);
#else
  no_cuda(op);
#endif
}

void batch_norm_update_running(Tensor& running_mean, Tensor& running_var, const Tensor& mean,
                               const Tensor& var, std::int64_t count, float momentum) {
  constexpr const char* op = "batch_norm_update_running";
  GA_CHECK(count >= 2,
           op << ": the unbiased running variance needs at least 2 rows, got " << count);
  GA_CHECK(std::isfinite(momentum) && momentum >= 0.0f && momentum <= 1.0f,
           op << ": expected a momentum in [0, 1], got " << momentum);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&running_mean, &running_var, &var}) {
    detail::check_defined(op, *t, "statistic");
    detail::check_dtype_is(op, *t, "statistic", DType::f32);
    detail::check_same_shape(op, *t, "statistic", mean, "mean");
    detail::check_same_device(op, *t, "statistic", mean, "mean");
  }
  const auto unbias =
      static_cast<float>(static_cast<double>(count) / static_cast<double>(count - 1));
  if (mean.device() == Device::CPU) {
    float* rm = running_mean.data<float>();
    float* rv = running_var.data<float>();
    const float* m = mean.data<float>();
    const float* v = var.data<float>();
    for (std::int64_t c = 0; c < mean.numel(); ++c) {
      rm[c] = bn_rules::running(rm[c], m[c], momentum);
      rv[c] = bn_rules::running(rv[c], v[c] * unbias, momentum);
    }
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::BatchNormChannelArgs a;
  a.in0 = mean.data<float>();
  a.in1 = var.data<float>();
  a.out0 = running_mean.data<float>();
  a.out1 = running_var.data<float>();
  a.channels = mean.numel();
  a.momentum = momentum;
  a.unbias = unbias;
  cuda::batch_norm_channels(cuda::BatchNormChannelOp::Running, a);
#else
  no_cuda(op);
#endif
}

void batch_norm_forward(const Tensor& x, const Tensor& mean, const Tensor& invstd,
                        const Tensor* weight, const Tensor* bias, Tensor& y) {
  constexpr const char* op = "batch_norm_forward";
  const std::int64_t channels = check_rows(op, x, "x");
  check_channels(op, mean, "mean", x);
  check_channels(op, invstd, "invstd", x);
  GA_CHECK((weight == nullptr) == (bias == nullptr),
           op << ": weight and bias go together (both or neither)");
  if (weight != nullptr) {
    check_channels(op, *weight, "weight", x);
    check_channels(op, *bias, "bias", x);
  }
  detail::check_defined(op, y, "y");
  detail::check_same_shape(op, y, "y", x, "x");
  detail::check_same_dtype(op, y, "y", x, "x");
  detail::check_same_device(op, y, "y", x, "x");
  if (x.device() == Device::CPU) {
    const float* m = mean.data<float>();
    const float* s = invstd.data<float>();
    const float* w = data_or_null(weight);
    const float* b = data_or_null(bias);
    const std::int64_t rows = x.shape()[0];
    with_element_type(x, [&](auto tag) {
      const auto* xp = x.data<decltype(tag)>();
      auto* yp = y.data<decltype(tag)>();
      for (std::int64_t n = 0; n < rows; ++n) {
        for (std::int64_t c = 0; c < channels; ++c) {
          const std::int64_t i = n * channels + c;
          store_f32(bn_rules::forward(to_f32(xp[i]), m[c], s[c], w != nullptr,
                                      w != nullptr ? w[c] : 0.0f, b != nullptr ? b[c] : 0.0f),
                    yp[i]);
        }
      }
    });
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::batch_norm_forward(device_rows(x, nullptr, &mean, &invstd), data_or_null(weight),
                           data_or_null(bias), y.raw_data());
#else
  no_cuda(op);
#endif
}

void batch_norm_backward_input(const Tensor& dy, const Tensor& x, const Tensor& mean,
                               const Tensor& invstd, const Tensor* weight,
                               const BatchNormBackwardSums& sums, Tensor& dx, GradientMode mode) {
  constexpr const char* op = "batch_norm_backward_input";
  const std::int64_t channels = check_rows(op, x, "x");
  detail::check_defined(op, dy, "dy");
  detail::check_same_shape(op, dy, "dy", x, "x");
  detail::check_same_dtype(op, dy, "dy", x, "x");
  detail::check_same_device(op, dy, "dy", x, "x");
  check_channels(op, mean, "mean", x);
  check_channels(op, invstd, "invstd", x);
  if (weight != nullptr) check_channels(op, *weight, "weight", x);
  GA_CHECK((sums.sum_dy == nullptr) == (sums.sum_dy_xhat == nullptr),
           op << ": sum_dy and sum_dy_xhat go together (both, or neither for constant statistics)");
  if (sums.sum_dy != nullptr) {
    check_channels(op, *sums.sum_dy, "sum_dy", x);
    check_channels(op, *sums.sum_dy_xhat, "sum_dy_xhat", x);
    check_count(op, sums.count);
  }
  detail::check_defined(op, dx, "dx");
  detail::check_same_shape(op, dx, "dx", x, "x");
  detail::check_same_dtype(op, dx, "dx", x, "x");
  detail::check_same_device(op, dx, "dx", x, "x");
  if (mode == GradientMode::Ignore) return;
  const bool accumulate = mode == GradientMode::Accumulate;
  const auto count = static_cast<float>(sums.count);
  if (x.device() == Device::CPU) {
    const float* m = mean.data<float>();
    const float* s = invstd.data<float>();
    const float* w = data_or_null(weight);
    const float* sd = data_or_null(sums.sum_dy);
    const float* sdx = data_or_null(sums.sum_dy_xhat);
    const std::int64_t rows = x.shape()[0];
    with_element_type(x, [&](auto tag) {
      const auto* xp = x.data<decltype(tag)>();
      const auto* gp = dy.data<decltype(tag)>();
      auto* dp = dx.data<decltype(tag)>();
      for (std::int64_t n = 0; n < rows; ++n) {
        for (std::int64_t c = 0; c < channels; ++c) {
          const std::int64_t i = n * channels + c;
          const float scale = w != nullptr ? w[c] * s[c] : s[c];
          const float mean_dy = sd != nullptr ? sd[c] / count : 0.0f;
          const float mean_dy_xhat = sdx != nullptr ? sdx[c] / count : 0.0f;
          const float h = bn_rules::xhat(to_f32(xp[i]), m[c], s[c]);
          float v = bn_rules::backward_input(to_f32(gp[i]), h, mean_dy, mean_dy_xhat, scale);
          if (accumulate) v = to_f32(dp[i]) + v;
          store_f32(v, dp[i]);
        }
      }
    });
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::batch_norm_backward_input(device_rows(x, &dy, &mean, &invstd), data_or_null(weight),
                                  data_or_null(sums.sum_dy), data_or_null(sums.sum_dy_xhat), count,
                                  dx.raw_data(), accumulate);
#else
  no_cuda(op);
#endif
}

}  // namespace gradaccum
