#include "kernels/relu.h"

#include <cstdint>

#include "core/half.h"
#include "kernels/elementwise_cpu.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/relu.cuh"
#endif

namespace gradaccum {
namespace {

// max(x, 0) with NaN propagated (as PyTorch does) and -0 mapped to +0.
inline float relu_f32(float x) {
  return (x > 0.0f || x != x) ? x : 0.0f;
}
inline std::uint16_t relu_f16(std::uint16_t h) {
  const bool negative = (h & 0x8000u) != 0 && (h & 0x7FFFu) <= 0x7C00u;  // incl. -0, -inf
  return negative ? std::uint16_t{0} : h;
}
// y > 0 for a half's bits: positive sign, non-zero, not NaN.
inline bool positive_f16(std::uint16_t h) {
  return (h & 0x8000u) == 0 && h != 0 && h <= 0x7C00u;
}

void relu_forward_cpu(const Tensor& x, Tensor& y) {
  const std::int64_t n = x.numel();
  if (x.dtype() == DType::f32) {
    const float* in = x.data<float>();
    float* out = y.data<float>();
    detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        out[i] = relu_f32(in[i]);
      return false;
    });
  } else {
    const std::uint16_t* in = x.data<std::uint16_t>();
    std::uint16_t* out = y.data<std::uint16_t>();
    detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        out[i] = relu_f16(in[i]);
      return false;
    });
  }
}

void relu_backward_cpu(const Tensor& dy, const Tensor& y, Tensor& dx, bool accumulate) {
  const std::int64_t n = dy.numel();
  if (dy.dtype() == DType::f32) {
    const float* g_all = dy.data<float>();
    const float* m_all = y.data<float>();
    float* out_all = dx.data<float>();
    // Both operands loaded unconditionally and no aliasing: a select the compiler vectorises
    // (a branch on the mask mispredicts half the time).
    detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
      const float* __restrict g = g_all;
      const float* __restrict m = m_all;
      float* __restrict out = out_all;
      if (accumulate) {
        for (std::int64_t i = b; i < e; ++i) {
          const float gi = g[i];
          out[i] = out[i] + (m[i] > 0.0f ? gi : 0.0f);
        }
      } else {
        for (std::int64_t i = b; i < e; ++i) {
          const float gi = g[i];
          out[i] = m[i] > 0.0f ? gi : 0.0f;
        }
      }
      return false;
    });
  } else {
    const std::uint16_t* g = dy.data<std::uint16_t>();
    const std::uint16_t* m = y.data<std::uint16_t>();
    std::uint16_t* out = dx.data<std::uint16_t>();
    detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const std::uint16_t gi = positive_f16(m[i]) ? g[i] : std::uint16_t{0};
        // The f32 sum of two halves rounded to half is the correctly rounded fp16 sum
        // (24 >= 2 * 11 + 2), i.e. exactly what the device's __hadd gives.
        out[i] = accumulate
                     ? float_to_half_bits(half_bits_to_float(out[i]) + half_bits_to_float(gi))
                     : gi;
      }
      return false;
    });
  }
}

void check_float_dtype(const char* op, const Tensor& t, const char* name) {
  GA_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f16,
           op << ": expected " << name << " of dtype f32 or f16, got " << t.str());
}

}  // namespace

void relu_forward(const Tensor& x, Tensor& y) {
  constexpr const char* op = "relu_forward";
  detail::check_defined(op, x, "x");
  detail::check_defined(op, y, "y");
  check_float_dtype(op, x, "x");
  detail::check_same_dtype(op, y, "y", x, "x");
  detail::check_same_shape(op, y, "y", x, "x");
  detail::check_same_device(op, y, "y", x, "x");
  GA_CHECK(&x != &y && (x.numel() == 0 || x.raw_data() != y.raw_data()),
           op << ": y may not alias x (" << x.str() << ")");
  if (x.device() == Device::CPU) {
    relu_forward_cpu(x, y);
    return;
  }
#if GRADACCUM_WITH_CUDA
  if (x.dtype() == DType::f32) {
    cuda::relu_forward_f32(x.data<float>(), y.data<float>(), x.numel());
  } else {
    cuda::relu_forward_f16(x.data<std::uint16_t>(), y.data<std::uint16_t>(), x.numel());
  }
#else
  GA_FAIL(op << ": " << x.str() << " is on the CUDA device, but gradaccum was built without CUDA");
#endif
}

void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  constexpr const char* op = "relu_backward";
  detail::check_defined(op, dy, "dy");
  detail::check_defined(op, y, "y");
  detail::check_defined(op, dx, "dx");
  check_float_dtype(op, dy, "dy");
  detail::check_same_dtype(op, y, "y", dy, "dy");
  detail::check_same_dtype(op, dx, "dx", dy, "dy");
  detail::check_same_shape(op, y, "y", dy, "dy");
  detail::check_same_shape(op, dx, "dx", dy, "dy");
  detail::check_same_device(op, y, "y", dy, "dy");
  detail::check_same_device(op, dx, "dx", dy, "dy");
  const bool accumulate = mode == GradientMode::Accumulate;
  if (dy.device() == Device::CPU) {
    relu_backward_cpu(dy, y, dx, accumulate);
    return;
  }
#if GRADACCUM_WITH_CUDA
  if (dy.dtype() == DType::f32) {
    cuda::relu_backward_f32(dy.data<float>(), y.data<float>(), dx.data<float>(), dy.numel(),
                            accumulate);
  } else {
    cuda::relu_backward_f16(dy.data<std::uint16_t>(), y.data<std::uint16_t>(),
                            dx.data<std::uint16_t>(), dy.numel(), accumulate);
  }
#else
  GA_FAIL(op << ": " << dy.str() << " is on the CUDA device, but gradaccum was built without CUDA");
#endif
}

}  // namespace gradaccum
