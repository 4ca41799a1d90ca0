// The arithmetic of kernels/exact_sum.h, shared by the CPU path and the CUDA kernels so that
// both compute the same bits (integers only: nothing here can round). Private to kernels/.
//
// An element's sum is sum_j limb[j] * 2^(32 j - 149), limb j an int64 held as its two's
// complement in a uint64 (so that additions wrap instead of overflowing, and a sum of limbs
// across ranks is an integer SUM). f32's smallest step is 2^-149 (the subnormal unit) and its
// largest finite value is below 2^128, so nine limbs span every finite f32 with room above.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__host__) && defined(__device__)
#define GA_EXACT_HD __host__ __device__
#else
#define GA_EXACT_HD
#endif

namespace gradaccum::exact_rules {

constexpr int kLimbs = 9;
constexpr int kLimbBits = 32;
// An addend adds less than 2^32 in magnitude to each of two limbs, so a limb stays below 2^63
// in magnitude for fewer than 2^31 addends: the true value of every limb is then exact, and the
// wrapped uint64 arithmetic computes it.
constexpr std::uint64_t kMaxAddends = (std::uint64_t{1} << 31) - 1;

GA_EXACT_HD inline std::uint32_t float_bits(float x) {
  std::uint32_t b;
  memcpy(&b, &x, sizeof b);
  return b;
}
GA_EXACT_HD inline float bits_float(std::uint32_t b) {
  float x;
  memcpy(&x, &b, sizeof x);
  return x;
}

// Leading zeros of a non-zero 32-bit value.
GA_EXACT_HD inline int clz32(std::uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __clz(static_cast<int>(x));
#else
  return __builtin_clz(x);
#endif
}

// `len` (1..24) bits of the little-endian digits d[0..n) starting at bit `pos`.
GA_EXACT_HD inline std::uint32_t bits_at(const std::uint32_t* d, int n, int pos, int len) {
  const int k = pos / kLimbBits, o = pos % kLimbBits;
  std::uint64_t w = d[k];
  if (k + 1 < n) w |= static_cast<std::uint64_t>(d[k + 1]) << kLimbBits;
  return static_cast<std::uint32_t>(w >> o) & ((1u << len) - 1u);
}

// Whether x is finite (exponent field not all ones).
GA_EXACT_HD inline bool finite(float x) {
  return ((float_bits(x) >> 23) & 0xffu) != 0xffu;
}

// Adds the finite x exactly to the element whose limb j is at limbs[j * stride].
// x = M * 2^(s - 149) with M < 2^24 and s = max(E - 1, 0) for the biased exponent E: M << s
// touches limbs s / 32 and s / 32 + 1 only.
// Where a finite x goes: limb j gets lo and limb j + 1 gets hi (both two's complement, zero
// for a zero x). Branch-free but for the subnormal exponent.
struct Addend {
  std::uint32_t j;
  std::uint64_t lo, hi;
};
GA_EXACT_HD inline Addend split(float x) {
  const std::uint32_t b = float_bits(x);
  const std::uint32_t e = (b >> 23) & 0xffu;
  const std::uint32_t m = (b & 0x7fffffu) | (e != 0 ? 0x800000u : 0u);
  const std::uint32_t s = e == 0 ? 0 : e - 1;
  const std::uint64_t v = static_cast<std::uint64_t>(m) << (s % kLimbBits);  // < 2^55
  const std::uint64_t neg = 0 - static_cast<std::uint64_t>(b >> 31);         // all ones if < 0
  return {s / kLimbBits, ((v & 0xffffffffu) ^ neg) - neg, ((v >> kLimbBits) ^ neg) - neg};
}

GA_EXACT_HD inline void add(std::uint64_t* limbs, std::int64_t stride, float x) {
  const Addend a = split(x);
  limbs[static_cast<std::int64_t>(a.j) * stride] += a.lo;
  limbs[static_cast<std::int64_t>(a.j + 1) * stride] += a.hi;
}

// The element's sum, rounded once to f32 (to nearest, ties to even; +-inf past the largest
// finite value; an exact zero is +0).
GA_EXACT_HD inline float round(const std::uint64_t* limbs, std::int64_t stride) {
  // Carries: limbs 0..7 into [0, 2^32), the top one signed. Arithmetic shifts of the signed
  // values (floor division by 2^32); no limb can overflow below the addend limit.
  std::int64_t l[kLimbs];
  for (int j = 0; j < kLimbs; ++j)
    l[j] = static_cast<std::int64_t>(limbs[j * stride]);
  for (int j = 0; j + 1 < kLimbs; ++j) {
    const std::int64_t carry = l[j] >> kLimbBits;
    l[j] -= static_cast<std::int64_t>(static_cast<std::uint64_t>(carry) << kLimbBits);
    l[j + 1] += carry;
  }
  const bool negative = l[kLimbs - 1] < 0;
  // The 320-bit two's complement value as ten 32-bit digits, then its magnitude.
  constexpr int kDigits = kLimbs + 1;
  std::uint32_t d[kDigits];
  for (int j = 0; j + 1 < kLimbs; ++j)
    d[j] = static_cast<std::uint32_t>(l[j]);
  const auto top = static_cast<std::uint64_t>(l[kLimbs - 1]);
  d[kLimbs - 1] = static_cast<std::uint32_t>(top);
  d[kLimbs] = static_cast<std::uint32_t>(top >> kLimbBits);
  if (negative) {
    std::uint64_t carry = 1;
    for (int k = 0; k < kDigits; ++k) {
      const std::uint64_t t = static_cast<std::uint64_t>(~d[k]) + carry;
      d[k] = static_cast<std::uint32_t>(t);
      carry = t >> kLimbBits;
    }
  }
  int hi = kDigits - 1;
  while (hi >= 0 && d[hi] == 0)
    --hi;
  if (hi < 0) return 0.0f;
  const int p = hi * kLimbBits + 31 - clz32(d[hi]);  // the leading one, in units of 2^-149
  const std::uint32_t sign = negative ? 0x80000000u : 0u;
  if (p < 24)
    return bits_float(sign | d[0]);  // below 2^-125: a subnormal or the smallest
                                     // normals, all exact (bits = the integer)
  // Bits [p - 23, p] are the significand; bit p - 24 rounds; anything below is sticky.
  const int shift = p - 23;
  std::uint32_t m = bits_at(d, kDigits, shift, 24);
  const std::uint32_t round_bit = bits_at(d, kDigits, shift - 1, 1);
  const int below = shift - 1;  // bits [0, below) are sticky
  bool sticky = (d[below / kLimbBits] & ((1u << (below % kLimbBits)) - 1u)) != 0;
  for (int k = 0; k < below / kLimbBits && !sticky; ++k)
    sticky = d[k] != 0;
  std::uint32_t exponent = static_cast<std::uint32_t>(shift) + 1;  // value = m * 2^(shift-149)
  if (round_bit != 0 && (sticky || (m & 1u) != 0)) {
    ++m;
    if (m == (1u << 24)) {
      m >>= 1;
      ++exponent;
    }
  }
  if (exponent >= 255) return bits_float(sign | 0x7f800000u);
  return bits_float(sign | (exponent << 23) | (m & 0x7fffffu));
}

}  // namespace gradaccum::exact_rules
