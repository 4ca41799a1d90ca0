// Shared helpers for the tests: random inputs, poisoned outputs, float64 comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/cuda_device.h"
#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"

namespace gradaccum::test {

// Skips the current test, with the reason, when no CUDA device (real or emulated) is present.
#define GA_REQUIRE_CUDA()                                                             \
  do {                                                                                \
    if (!::gradaccum::cuda_available()) {                                             \
      GTEST_SKIP() << (::gradaccum::built_with_cuda()                                 \
                           ? "no CUDA device found (cudaGetDeviceCount reports none)" \
                           : "gradaccum was built without CUDA support");             \
    }                                                                                 \
  } while (0)

// The message of the gradaccum::Error that f throws (plain_message: no source location), or
// "(no error)".
inline std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return plain_message(e);
  }
  return "(no error)";
}

// Uniform values in [low, high) that are never exactly zero.
inline std::vector<float> random_values(std::int64_t n, std::uint64_t seed, float low = -1.0f,
                                        float high = 1.0f) {
  CounterRng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) {
    do {
      x = low + (high - low) * rng.uniform();
    } while (x == 0.0f);
  }
  return v;
}

inline Tensor random_tensor(const Shape& shape, std::uint64_t seed, DType dtype = DType::f32,
                            Device device = Device::CPU, float low = -1.0f, float high = 1.0f) {
  return Tensor::from_vector(random_values(shape.numel(), seed, low, high), shape, dtype, device);
}

// A tensor filled with NaN, so that any element a kernel fails to write shows up.
inline Tensor poisoned(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU) {
  return Tensor::full(shape, std::numeric_limits<float>::quiet_NaN(), dtype, device);
}

// Largest |got - want| / max(|want|, floor) over all elements; NaN anywhere gives +inf.
inline double max_rel_error(const std::vector<float>& got, const std::vector<double>& want,
                            double floor = 1e-6) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    const double err =
        std::fabs(static_cast<double>(got[i]) - want[i]) / std::max(std::fabs(want[i]), floor);
    worst = std::max(worst, err);
  }
  return worst;
}

}  // namespace gradaccum::test
