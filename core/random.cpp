#include "core/random.h"

#include <cmath>
#include <cstdint>

#include "core/half.h"

namespace gradaccum {
namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <typename Draw>
Tensor draw(const Shape& shape, std::uint64_t seed, DType dtype, Device device, Draw&& f) {
  // The tensors first (an OutOfMemoryError naming the bytes when they cannot exist), then the
  // values drawn straight into the host one.
  Tensor out = Tensor::empty(shape, dtype, device);
  Tensor staging = device == Device::CPU ? Tensor() : Tensor::empty(shape, dtype, Device::CPU);
  Tensor& host = device == Device::CPU ? out : staging;
  CounterRng rng(seed);
  const auto n = static_cast<std::size_t>(shape.numel());
  if (dtype == DType::f32) {
    float* p = host.data<float>();
    for (std::size_t i = 0; i < n; ++i)
      p[i] = f(rng);
  } else {
    auto* p = host.data<std::uint16_t>();
    for (std::size_t i = 0; i < n; ++i)
      p[i] = float_to_half_bits(f(rng));
  }
  if (device != Device::CPU) out.copy_from(staging);
  return out;
}

}  // namespace

std::uint64_t CounterRng::next() {
  return splitmix64(seed_ ^ splitmix64(counter_++));
}

float CounterRng::uniform() {
  return static_cast<float>(next() >> 40) * 0x1.0p-24f;
}

float CounterRng::normal() {
  const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(next() >> 11) * 0x1.0p-53;
  constexpr double kTwoPi = 6.283185307179586476925286766559;  // M_PI is not standard C++
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(kTwoPi * u2));
}

Tensor uniform(const Shape& shape, float low, float high, std::uint64_t seed, DType dtype,
               Device device) {
  GA_CHECK(low <= high, "uniform: low " << low << " must not exceed high " << high);
  GA_CHECK(std::isfinite(high - low), "uniform: bounds must be finite with a finite width, got ["
                                          << low << ", " << high << ")");
  return draw(shape, seed, dtype, device, [=](CounterRng& r) {
    const float v = low + (high - low) * r.uniform();
    // The sum can round up to `high`; keep the interval half-open (f32), as documented.
    return v < high || low == high ? v : std::nextafter(high, low);
  });
}

Tensor normal(const Shape& shape, float mean, float stddev, std::uint64_t seed, DType dtype,
              Device device) {
  GA_CHECK(stddev >= 0 && std::isfinite(stddev) && std::isfinite(mean),
           "normal: mean must be finite and stddev finite and >= 0, got mean "
               << mean << ", stddev " << stddev);
  return draw(shape, seed, dtype, device,
              [=](CounterRng& r) { return mean + stddev * r.normal(); });
}

Tensor linear_weight_init(std::int64_t in, std::int64_t out, std::uint64_t seed, DType dtype,
                          Device device) {
  GA_CHECK(in > 0 && out > 0, "linear init: in and out must be > 0, got " << in << ", " << out);
  const float bound = 1.0f / std::sqrt(static_cast<float>(in));
  return uniform({out, in}, -bound, bound, seed, dtype, device);
}

Tensor linear_bias_init(std::int64_t in, std::int64_t out, std::uint64_t seed, DType dtype,
                        Device device) {
  GA_CHECK(in > 0 && out > 0, "linear init: in and out must be > 0, got " << in << ", " << out);
  const float bound = 1.0f / std::sqrt(static_cast<float>(in));
  return uniform({out}, -bound, bound, seed, dtype, device);
}

}  // namespace gradaccum
