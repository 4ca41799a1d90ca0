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
  // Bit-level and branch-light (this runs once per element of every f16 tensor the CPU makes);
  // equal to double_to_half_bits(f), which the tests check along with CUDA's __float2half_rn.
  std::uint32_t x = 0;
  std::memcpy(&x, &f, sizeof x);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t a = x & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return 0x7FFFu;             // NaN: canonical, as the device's conversion
  if (a >= 0x477FF000u) return sign | 0x7C00u;     // >= 65520 (or inf): infinity
  if (a < 0x38800000u) {                           // below 2^-14: an fp16 subnormal (or zero)
    const float units = std::fabs(f) * 0x1.0p24f;  // exact: units of 2^-24, below 1024
    return sign | static_cast<std::uint16_t>(round_half_even(units));
  }
  // Normal: round the 23-bit mantissa to 10 bits at bit 13, ties to even (a carry moves into the
  // exponent), then re-bias the exponent from 127 to 15.
  const std::uint32_t rounded = a + 0x0FFFu + ((a >> 13) & 1u);
  return sign | static_cast<std::uint16_t>((rounded - (112u << 23)) >> 13);
}

float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits = 0;
  if (exp == 0x1F) {
    // Infinity, or a NaN with its payload kept and made quiet.
    bits = sign | 0x7F800000u | (mant != 0 ? 0x00400000u | (mant << 13) : 0u);
  } else if (exp == 0) {
    const float v = static_cast<float>(mant) * 0x1.0p-24f;  // exact: zero or a subnormal
    return sign ? -v : v;
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

}  // namespace gradaccum
