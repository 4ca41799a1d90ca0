// Device intrinsics that need more than one host instruction: directed rounding (through the
// host's rounding modes; this file is compiled with -frounding-math), saturating conversions, and
// the exact double-to-half rounding behind __hfma.
#include "emu/cuda_emu.h"

#include <cfenv>
#include <cmath>
#include <cstdint>

namespace gradaccum::emu::detail {
namespace {

int host_mode(int mode) {
  switch (mode) {
    case 1:
      return FE_TOWARDZERO;
    case 2:
      return FE_UPWARD;
    case 3:
      return FE_DOWNWARD;
    default:
      return FE_TONEAREST;
  }
}

template <typename T>
T directed(int op, int mode, T a, T b, T c) {
  const int saved = std::fegetround();
  std::fesetround(host_mode(mode));
  const volatile T va = a;
  const volatile T vb = b;
  const volatile T vc = c;
  volatile T r = 0;
  switch (op) {
    case kOpAdd:
      r = va + vb;
      break;
    case kOpSub:
      r = va - vb;
      break;
    case kOpMul:
      r = va * vb;
      break;
    case kOpFma:
      r = std::fma(static_cast<T>(va), static_cast<T>(vb), static_cast<T>(vc));
      break;
    case kOpDiv:
      r = va / vb;
      break;
    case kOpRcp:
      r = static_cast<T>(1) / va;
      break;
    default:
      r = std::sqrt(static_cast<T>(va));
      break;
  }
  const T result = r;
  std::fesetround(saved);
  return result;
}

}  // namespace

float fop_directed(int op, int mode, float a, float b, float c) {
  return directed<float>(op, mode, a, b, c);
}

double dop_directed(int op, int mode, double a, double b, double c) {
  return directed<double>(op, mode, a, b, c);
}

// cvt.{rni,rzi,rpi,rmi}.s*.f*: NaN gives 0, out-of-range values saturate.
long long f2ll(double value, int mode, long long lo, long long hi) {
  if (std::isnan(value)) return 0;
  double r = value;
  switch (mode) {
    case 1:
      r = std::trunc(value);
      break;
    case 2:
      r = std::ceil(value);
      break;
    case 3:
      r = std::floor(value);
      break;
    default:
      r = std::nearbyint(value);
      break;
  }
  if (r <= static_cast<double>(lo)) return lo;
  if (r >= static_cast<double>(hi)) return hi;
  return static_cast<long long>(r);
}

unsigned long long f2ull(double value, int mode) {
  if (std::isnan(value) || value <= 0.0) return 0;
  const double r = mode == 1 ? std::trunc(value) : std::nearbyint(value);
  if (r >= 18446744073709551616.0) return UINT64_MAX;
  return static_cast<unsigned long long>(r);
}

unsigned short double_to_half_bits(double value) {
  const unsigned short sign = std::signbit(value) ? 0x8000u : 0u;
  if (std::isnan(value)) return static_cast<unsigned short>(sign | 0x7e00u);
  const double a = std::fabs(value);
  if (a >= 65520.0) return static_cast<unsigned short>(sign | 0x7c00u);  // rounds to infinity
  if (a < 0x1p-14) {
    // Subnormal (or zero): units of 2^-24, exact scaling, one rounding to nearest even. 1024
    // units is the smallest normal number, whose bits are 0x0400: the formula holds there too.
    const double units = std::nearbyint(a * 0x1p24);
    return static_cast<unsigned short>(sign | static_cast<unsigned>(units));
  }
  int e = 0;
  (void)std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int exponent = e - 1;     // a in [2^exponent, 2^(exponent+1))
  double significand = std::nearbyint(std::ldexp(a, 10 - exponent));  // [1024, 2048]
  if (significand >= 2048.0) {
    significand = 1024.0;
    ++exponent;
  }
  if (exponent > 15) return static_cast<unsigned short>(sign | 0x7c00u);
  return static_cast<unsigned short>(sign | (static_cast<unsigned>(exponent + 15) << 10) |
                                     (static_cast<unsigned>(significand) - 1024u));
}

}  // namespace gradaccum::emu::detail
