#include "core/half.h"

#include <cmath>
#include <cstring>

namespace gradaccum {
namespace {

// Rounds a non-negative, exactly representable q to the nearest integer, ties to even.
double round_half_even(double q) {
  const double fl = std::floor(q);
  const double frac = q - fl;  // exact: q has at most 53 significant bits
  if (frac > 0.5) return fl + 1.0;
  if (frac < 0.5) return fl;
  return std::fmod(fl, 2.0) == 0.0 ? fl : fl + 1.0;
}

}  // namespace

std::uint16_t double_to_half_bits(double d) {
  // NaN maps to the canonical 0x7FFF, as the device's conversion does.
  if (std::isnan(d)) return 0x7FFFu;
  const std::uint16_t sign = std::signbit(d) ? 0x8000u : 0u;
  const double a = std::fabs(d);
  if (std::isinf(a)) return sign | 0x7C00u;
  if (a == 0.0) return sign;
  int e = 0;
  std::frexp(a, &e);  // a = m * 2^e with m in [0.5, 1): the half exponent is e - 1
  int exp = e - 1;
  if (exp < -14) {
    // Subnormal (or rounds up into the smallest normal): units of 2^-24.
    const double r = round_half_even(std::ldexp(a, 24));
    return sign | static_cast<std::uint16_t>(r);  // r == 1024 encodes the smallest normal
  }
  double r = round_half_even(std::ldexp(a, 10 - exp));  // in [1024, 2048]
  if (r == 2048.0) {
    r = 1024.0;
    ++exp;
  }
  if (exp > 15) return sign | 0x7C00u;  // overflow to infinity
  return sign | static_cast<std::uint16_t>(((exp + 15) << 10) | (static_cast<int>(r) - 1024));
}

std::uint16_t float_to_half_bits(float f) {
  // float -> double is exact, so this is a single rounding from float.
  return double_to_half_bits(static_cast<double>(f));
}

float half_bits_to_float(std::uint16_t h) {
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  if (exp == 0x1F) {
    if (mant != 0) {
      // Preserve the payload like the device does: quiet NaN with the same sign.
      std::uint32_t bits = (static_cast<std::uint32_t>(h & 0x8000u) << 16) | 0x7FC00000u |
                           (static_cast<std::uint32_t>(mant) << 13);
      float out;
      std::memcpy(&out, &bits, sizeof out);
      return out;
    }
    return sign * INFINITY;
  }
  if (exp == 0) return sign * std::ldexp(static_cast<float>(mant), -24);
  return sign * std::ldexp(static_cast<float>(mant + 1024), exp - 25);
}

}  // namespace gradaccum
