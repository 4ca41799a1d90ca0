// binary16 conversions: every half pattern, exact ties, subnormals, overflow, and agreement with
// CUDA's own host implementation (cuda_fp16.h) when the toolkit is installed.
//
// NaN: float_to_half_bits / double_to_half_bits map every NaN (any sign, any payload) to the
// canonical 0x7FFF, as __float2half_rn and the device's cvt.rn.f16.f32 do. half_bits_to_float
// returns a quiet NaN keeping the half's sign and payload; CUDA's host __half2float returns the
// canonical 0x7FFFFFFF instead, so for NaNs only "is NaN" is compared.
#include "core/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/random.h"

#if defined(__has_include)
#if __has_include(<cuda_fp16.h>)
#include <cuda_fp16.h>
#define GA_HAVE_CUDA_FP16_HOST 1
#endif
#endif

namespace gradaccum {
namespace {

std::uint32_t float_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
bool is_nan_half(std::uint16_t h) {
  return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
}

// The exact value of a finite half, computed independently of half.cpp.
double half_value(std::uint16_t h) {
  const int e = (h >> 10) & 0x1F;
  const int m = h & 0x3FF;
  const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return (h & 0x8000) ? -mag : mag;
}

TEST(Half, EveryPatternWidensExactlyAndRoundTrips) {
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<std::uint16_t>(i);
    const float f = half_bits_to_float(h);
    if (is_nan_half(h)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << i;
      EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << i;
      EXPECT_EQ(float_to_half_bits(f), 0x7FFF) << std::hex << i;
      EXPECT_EQ(double_to_half_bits(f), 0x7FFF) << std::hex << i;
      continue;
    }
    if ((h & 0x7FFF) == 0x7C00) {
      EXPECT_TRUE(std::isinf(f)) << std::hex << i;
    } else {
      EXPECT_EQ(static_cast<double>(f), half_value(h)) << std::hex << i;
    }
    EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << i;
    EXPECT_EQ(float_to_half_bits(f), h) << std::hex << i;
    EXPECT_EQ(double_to_half_bits(static_cast<double>(f)), h) << std::hex << i;
  }
}

// Between each pair of adjacent finite halves: the midpoint goes to the even one, anything
// above it (by one float / double ulp) to the upper one, anything below to the lower one.
TEST(Half, TiesRoundToEvenAndNeighboursRoundToNearest) {
  for (std::uint32_t i = 0; i < 0x7BFF; ++i) {  // every positive pair (h, h + 1), both finite
    for (std::uint16_t sign : {std::uint16_t{0}, std::uint16_t{0x8000}}) {
      const auto lo = static_cast<std::uint16_t>(i | sign);
      const auto hi = static_cast<std::uint16_t>((i + 1) | sign);
      const double mid = (half_value(lo) + half_value(hi)) / 2;  // exact: 12 significant bits
      const std::uint16_t even = (lo & 1) == 0 ? lo : hi;
      const double away = sign ? -INFINITY : INFINITY;
      const float midf = static_cast<float>(mid);
      ASSERT_EQ(static_cast<double>(midf), mid);
      EXPECT_EQ(float_to_half_bits(midf), even) << std::hex << lo;
      EXPECT_EQ(float_to_half_bits(std::nextafter(midf, static_cast<float>(away))), hi)
          << std::hex << lo;
      EXPECT_EQ(float_to_half_bits(std::nextafter(midf, 0.0f)), lo) << std::hex << lo;
      EXPECT_EQ(double_to_half_bits(mid), even) << std::hex << lo;
      EXPECT_EQ(double_to_half_bits(std::nextafter(mid, away)), hi) << std::hex << lo;
      EXPECT_EQ(double_to_half_bits(std::nextafter(mid, 0.0)), lo) << std::hex << lo;
    }
  }
}

TEST(Half, ExactTiesRoundToEvenBothWays) {
  // 1 + 2^-11 is halfway between 1 (0x3C00, even) and 1 + 2^-10 (0x3C01): down to even.
  EXPECT_EQ(float_to_half_bits(1.0f + 0x1.0p-11f), 0x3C00);
  // 1 + 3 * 2^-11 is halfway between 0x3C01 (odd) and 0x3C02 (even): up to even.
  EXPECT_EQ(float_to_half_bits(1.0f + 3 * 0x1.0p-11f), 0x3C02);
  EXPECT_EQ(float_to_half_bits(-(1.0f + 0x1.0p-11f)), 0xBC00);
  EXPECT_EQ(float_to_half_bits(-(1.0f + 3 * 0x1.0p-11f)), 0xBC02);
  // 2049 is halfway between 2048 and 2050 (spacing 2 in [2048, 4096)): down to 2048 (even).
  EXPECT_EQ(half_bits_to_float(float_to_half_bits(2049.0f)), 2048.0f);
  EXPECT_EQ(half_bits_to_float(float_to_half_bits(2051.0f)), 2052.0f);
}

TEST(Half, Subnormals) {
  EXPECT_EQ(float_to_half_bits(0x1.0p-24f), 0x0001);  // smallest subnormal
  EXPECT_EQ(half_bits_to_float(0x0001), 0x1.0p-24f);
  EXPECT_EQ(float_to_half_bits(0x1.0p-25f), 0x0000);            // tie with 0: to even (0)
  EXPECT_EQ(float_to_half_bits(0x1.000002p-25f), 0x0001);       // just above the tie
  EXPECT_EQ(float_to_half_bits(-0x1.0p-25f), 0x8000);           // rounds to -0
  EXPECT_EQ(float_to_half_bits(3 * 0x1.0p-25f), 0x0002);        // tie 1|2: to even (2)
  EXPECT_EQ(float_to_half_bits(1023 * 0x1.0p-24f), 0x03FF);     // largest subnormal
  EXPECT_EQ(float_to_half_bits(1023.5f * 0x1.0p-24f), 0x0400);  // tie: up to the smallest normal
  EXPECT_EQ(float_to_half_bits(0x1.0p-14f), 0x0400);            // smallest normal
  EXPECT_EQ(half_bits_to_float(0x03FF), 1023 * 0x1.0p-24f);
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_half_bits(1e-30f), 0x0000);
}

TEST(Half, LargestFiniteAndOverflowThreshold) {
  EXPECT_EQ(float_to_half_bits(65504.0f), 0x7BFF);
  EXPECT_EQ(half_bits_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(float_to_half_bits(65519.99f), 0x7BFF);
  EXPECT_EQ(float_to_half_bits(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(float_to_half_bits(65520.0f), 0x7C00);  // the tie 65504|65536 rounds to even: inf
  EXPECT_EQ(float_to_half_bits(-65520.0f), 0xFC00);
  EXPECT_EQ(float_to_half_bits(-65519.99f), 0xFBFF);
  EXPECT_EQ(float_to_half_bits(1e10f), 0x7C00);
  EXPECT_EQ(float_to_half_bits(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(float_to_half_bits(INFINITY), 0x7C00);
  EXPECT_EQ(float_to_half_bits(-INFINITY), 0xFC00);
  EXPECT_TRUE(std::isinf(half_bits_to_float(0x7C00)));
  EXPECT_LT(half_bits_to_float(0xFC00), 0.0f);
}

TEST(Half, SignedZeroAndNaN) {
  EXPECT_EQ(float_to_half_bits(0.0f), 0x0000);
  EXPECT_EQ(float_to_half_bits(-0.0f), 0x8000);
  EXPECT_TRUE(std::signbit(half_bits_to_float(0x8000)));
  EXPECT_EQ(half_bits_to_float(0x8000), 0.0f);
  EXPECT_EQ(double_to_half_bits(-0.0), 0x8000);
  // Every NaN, whatever its sign and payload, becomes the canonical 0x7FFF.
  for (std::uint32_t bits :
       {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0x7FA00000u}) {
    EXPECT_EQ(float_to_half_bits(bits_float(bits)), 0x7FFF) << std::hex << bits;
  }
  EXPECT_EQ(double_to_half_bits(std::numeric_limits<double>::quiet_NaN()), 0x7FFF);
  EXPECT_EQ(double_to_half_bits(-std::numeric_limits<double>::quiet_NaN()), 0x7FFF);
  EXPECT_EQ(double_to_half_bits(std::numeric_limits<double>::signaling_NaN()), 0x7FFF);
  // A half NaN widens to a quiet float NaN with its sign and payload.
  EXPECT_EQ(float_bits(half_bits_to_float(0x7E00)), 0x7FC00000u);
  EXPECT_EQ(float_bits(half_bits_to_float(0xFC01)), 0xFFC02000u);
}

// double_to_half_bits rounds once, from the exact double; rounding through float first would
// be a double rounding and get these wrong.
TEST(Half, DoubleRoundsOnceFromTheExactValue) {
  // Just above the tie 1 | 1 + 2^-10, by less than a float ulp: up, though (float) gives 0x3C00.
  const double above = 1.0 + 0x1.0p-11 + 0x1.0p-40;
  EXPECT_EQ(float_to_half_bits(static_cast<float>(above)), 0x3C00);
  EXPECT_EQ(double_to_half_bits(above), 0x3C01);
  // Just below the tie 0x3C01 | 0x3C02 (which would go up to even): down.
  const double below = 1.0 + 3 * 0x1.0p-11 - 0x1.0p-45;
  EXPECT_EQ(float_to_half_bits(static_cast<float>(below)), 0x3C02);
  EXPECT_EQ(double_to_half_bits(below), 0x3C01);
  // Around the overflow threshold 65520 = 65504 + 16.
  EXPECT_EQ(double_to_half_bits(65520.0), 0x7C00);
  EXPECT_EQ(double_to_half_bits(65520.0 - 0x1.0p-30), 0x7BFF);
  EXPECT_EQ(double_to_half_bits(-(65520.0 - 0x1.0p-30)), 0xFBFF);
  EXPECT_EQ(double_to_half_bits(std::nextafter(65520.0, 0.0)), 0x7BFF);
  EXPECT_EQ(double_to_half_bits(1e300), 0x7C00);
  EXPECT_EQ(double_to_half_bits(std::numeric_limits<double>::max()), 0x7C00);
  EXPECT_EQ(double_to_half_bits(-std::numeric_limits<double>::infinity()), 0xFC00);
  // Subnormal range: units of 2^-24.
  EXPECT_EQ(double_to_half_bits(0x1.0p-25), 0x0000);
  EXPECT_EQ(double_to_half_bits(0x1.0p-25 + 0x1.0p-70), 0x0001);
  EXPECT_EQ(double_to_half_bits(0x1.0p-25 - 0x1.0p-70), 0x0000);
  EXPECT_EQ(double_to_half_bits(2.5 * 0x1.0p-24), 0x0002);  // tie 2|3: to even
  EXPECT_EQ(double_to_half_bits(2.5 * 0x1.0p-24 + 0x1.0p-70), 0x0003);
  EXPECT_EQ(double_to_half_bits(std::numeric_limits<double>::denorm_min()), 0x0000);
  EXPECT_EQ(double_to_half_bits(-std::numeric_limits<double>::denorm_min()), 0x8000);
  // 1/3 = 0x3555 (0.333251953125); 0.1 = 0x2E66.
  EXPECT_EQ(double_to_half_bits(1.0 / 3.0), 0x3555);
  EXPECT_EQ(double_to_half_bits(0.1), 0x2E66);
  EXPECT_EQ(half_value(0x3555), 0.333251953125);
}

// A value in every float exponent range: random sign and mantissa, exponent uniform in
// [-30, 20] (covering zero-rounding, subnormal, normal and overflow halves) or any exponent.
float random_float(CounterRng& rng) {
  const std::uint64_t r = rng.next();
  std::uint32_t bits = static_cast<std::uint32_t>(r);
  if ((r >> 32) & 1) {
    const auto exp = static_cast<std::uint32_t>(127 - 30 + ((r >> 33) % 51));
    bits = (bits & 0x807FFFFFu) | (exp << 23);
  }
  return bits_float(bits);
}

#if defined(GA_HAVE_CUDA_FP16_HOST)

std::uint16_t cuda_bits(__half h) {
  return static_cast<__half_raw>(h).x;
}
__half cuda_half(std::uint16_t bits) {
  __half_raw raw;
  raw.x = bits;
  return __half(raw);
}
std::uint16_t cuda_float_to_half(float f) {
  return cuda_bits(__float2half_rn(f));
}

TEST(HalfVsCuda, FloatToHalfMatchesFloat2HalfRn) {
  CounterRng rng(20240601);
  std::size_t checked = 0;
  for (int i = 0; i < 1 << 20; ++i) {
    const float f = random_float(rng);
    ASSERT_EQ(float_to_half_bits(f), cuda_float_to_half(f))
        << "f = " << f << " (0x" << std::hex << float_bits(f) << ")";
    ++checked;
  }
  // Every float within 16 ulps of each half midpoint and each half (ties and their neighbours).
  for (std::uint32_t h = 0; h < 0x7C00; ++h) {
    const float mid = static_cast<float>(half_value(static_cast<std::uint16_t>(h)) +
                                         (half_value(static_cast<std::uint16_t>(h + 1)) -
                                          half_value(static_cast<std::uint16_t>(h))) /
                                             2);
    for (float center : {mid, half_bits_to_float(static_cast<std::uint16_t>(h))}) {
      for (int d = -16; d <= 16; ++d) {
        const std::int64_t b = static_cast<std::int64_t>(float_bits(center)) + d;
        if (b < 0) continue;
        for (std::uint32_t sign : {0u, 0x80000000u}) {
          const float f = bits_float(static_cast<std::uint32_t>(b) | sign);
          ASSERT_EQ(float_to_half_bits(f), cuda_float_to_half(f))
              << "f = " << f << " (0x" << std::hex << float_bits(f) << ")";
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 1000000u);
}

TEST(HalfVsCuda, HalfToFloatMatchesHalf2Float) {
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto bits = static_cast<std::uint16_t>(i);
    const float want = __half2float(cuda_half(bits));
    const float got = half_bits_to_float(bits);
    if (is_nan_half(bits)) {
      EXPECT_TRUE(std::isnan(want) && std::isnan(got));  // payloads differ: see the top
    } else {
      EXPECT_EQ(float_bits(got), float_bits(want)) << std::hex << i;
    }
  }
}

TEST(HalfVsCuda, DoubleToHalfMatchesDouble2Half) {
  CounterRng rng(7);
  for (int i = 0; i < 1 << 18; ++i) {
    // A float-range value plus low-order bits a float cannot hold.
    const double d = static_cast<double>(random_float(rng)) *
                     (1.0 + static_cast<double>(rng.next() >> 11) * 0x1.0p-75);
    ASSERT_EQ(double_to_half_bits(d), cuda_bits(__double2half(d))) << "d = " << d;
  }
}

#else

TEST(HalfVsCuda, FloatToHalfMatchesFloat2HalfRn) {
  GTEST_SKIP() << "cuda_fp16.h is not available (no CUDA toolkit include directory)";
}

#endif

TEST(Half, BitLevelFloatConversionEqualsTheExactRounding) {
  // Every float with a stride (all exponents, both signs), plus every float around each fp16
  // rounding boundary of interest: the subnormal/normal border, 65504/65520, ties.
  std::int64_t bad = 0;
  auto check = [&](std::uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    const std::uint16_t want = double_to_half_bits(static_cast<double>(f));
    const std::uint16_t got = float_to_half_bits(f);
    if (got != want && ++bad < 10) {
      ADD_FAILURE() << std::hex << "float 0x" << bits << ": got 0x" << got << ", want 0x" << want;
    }
  };
  for (std::uint64_t b = 0; b <= 0xFFFFFFFFull; b += 251)
    check(static_cast<std::uint32_t>(b));
  for (float center : {0x1.0p-14f, 0x1.0p-24f, 0x1.0p-25f, 65504.0f, 65520.0f, 1.0f, 2049.0f,
                       0x1.ffcp-15f, std::numeric_limits<float>::infinity()}) {
    std::uint32_t c;
    std::memcpy(&c, &center, sizeof c);
    for (std::uint32_t d = 0; d < 20000; ++d) {
      check(c + d);
      check(c - d);
      check((c + d) | 0x80000000u);
    }
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace gradaccum
