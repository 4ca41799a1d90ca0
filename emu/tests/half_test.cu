// Half precision: __hfma (emulated through double) against an independent round-to-nearest-even
// reference, on inputs where a float fma rounded to half is wrong; and the host arithmetic of
// cuda_fp16.h that kernels run on the emulator.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/launch.cuh"
#include "emu_test_util.h"

namespace gradaccum {
namespace {

using emu_test::DeviceBuffer;

double half_value(unsigned short bits) {
  const int exponent = (bits >> 10) & 0x1f;
  const int mantissa = bits & 0x3ff;
  double v = exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25);
  if (exponent == 31) v = mantissa == 0 ? INFINITY : NAN;
  return (bits & 0x8000) != 0 ? -v : v;
}

// Round-to-nearest-even to half by search over the ordered positive halves (an exact x).
unsigned short reference_half(double x) {
  const unsigned short sign = std::signbit(x) ? 0x8000 : 0;
  const double a = std::fabs(x);
  if (a >= 65520.0) return sign | 0x7c00;
  unsigned lo = 0, hi = 0x7bff;  // largest h with value(h) <= a
  while (lo < hi) {
    const unsigned mid = (lo + hi + 1) / 2;
    if (half_value(static_cast<unsigned short>(mid)) <= a) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  if (lo == 0x7bff) return sign | 0x7bff;  // below 65520: rounds down to the largest finite
  const double below = half_value(static_cast<unsigned short>(lo));
  const double above = half_value(static_cast<unsigned short>(lo + 1));
  const double d_below = a - below;  // exact: both within a factor of 2 (or tiny)
  const double d_above = above - a;
  unsigned pick = lo;
  if (d_above < d_below || (d_above == d_below && (lo & 1) != 0)) pick = lo + 1;
  return static_cast<unsigned short>(sign | pick);
}

__global__ void hfma_kernel(const __half* a, const __half* b, const __half* c, __half* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = __hfma(a[i], b[i], c[i]);
}

__global__ void half_arith_kernel(const __half* a, const __half* b, __half* sum, __half* product,
                                  __half* quotient, const float* f, __half* converted, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) {
    sum[i] = __hadd(a[i], b[i]);
    product[i] = a[i] * b[i];
    quotient[i] = __hdiv(a[i], b[i]);
    converted[i] = __float2half_rn(f[i]);
  }
}

std::uint64_t g_state = 12345;
std::uint64_t next_u64() {
  g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
  return g_state >> 16;
}
unsigned short random_finite_half(int max_exponent) {
  for (;;) {
    const auto bits = static_cast<unsigned short>(next_u64() & 0xffff);
    if (((bits >> 10) & 0x1f) <= max_exponent) return bits;
  }
}
__half to_half(unsigned short bits) {
  return __ushort_as_half(bits);
}

TEST(EmuHalf, HfmaRoundsOnceToNearestEven) {
  std::vector<__half> a, b, c;
  std::vector<unsigned short> ab, bb, cb;
  const auto add = [&](unsigned short x, unsigned short y, unsigned short z) {
    ab.push_back(x);
    bb.push_back(y);
    cb.push_back(z);
    a.push_back(to_half(x));
    b.push_back(to_half(y));
    c.push_back(to_half(z));
  };
  // Products that sit exactly halfway between two halves, nudged by a tiny c: the exact sum is
  // just off the midpoint, which a float fma loses before the rounding to half.
  int midpoints = 0;
  while (midpoints < 3000) {
    const unsigned short x = random_finite_half(20) & 0x7fff;
    const unsigned short y = random_finite_half(20) & 0x7fff;
    const double p = half_value(x) * half_value(y);
    if (p == 0.0 || p > 60000.0 || p < 1e-3) continue;
    const double r = half_value(reference_half(p));
    const double ulp = std::ldexp(1.0, std::ilogb(r) - 10);
    if (std::fabs(std::fabs(p - r) - ulp / 2) != 0.0) continue;  // not a midpoint
    const unsigned short tiny = static_cast<unsigned short>(1 + (next_u64() % 3));  // 2^-24 ..
    add(x, y, (next_u64() & 1) != 0 ? tiny : static_cast<unsigned short>(tiny | 0x8000));
    ++midpoints;
  }
  for (int i = 0; i < 20000; ++i)
    add(random_finite_half(22), random_finite_half(22), random_finite_half(30));
  const int n = static_cast<int>(a.size());
  DeviceBuffer<__half> da(a), db(b), dc(c), dout(static_cast<std::size_t>(n));
  GA_LAUNCH(hfma_kernel, dim3((n + 255) / 256), dim3(256), 0, nullptr,
            static_cast<const __half*>(da.get()), static_cast<const __half*>(db.get()),
            static_cast<const __half*>(dc.get()), dout.get(), n);
  const auto out = dout.read();
  int wrong = 0, naive_wrong = 0;
  for (int i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    const double exact = std::fma(half_value(ab[k]), half_value(bb[k]), half_value(cb[k]));
    const unsigned short expected = reference_half(exact);
    const unsigned short got = __half_as_ushort(out[k]);
    if (got != expected) {
      if (++wrong <= 5) {
        ADD_FAILURE() << "hfma(" << half_value(ab[k]) << ", " << half_value(bb[k]) << ", "
                      << half_value(cb[k]) << "): expected bits " << expected << ", got " << got;
      }
    }
    const float naive =
        std::fma(static_cast<float>(half_value(ab[k])), static_cast<float>(half_value(bb[k])),
                 static_cast<float>(half_value(cb[k])));
    if (reference_half(naive) != expected) ++naive_wrong;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(naive_wrong, 100) << "the inputs should defeat a float fma rounded to half";
}

TEST(EmuHalf, HostArithmeticRoundsToNearestEven) {
  std::vector<__half> a, b;
  std::vector<float> f;
  for (int i = 0; i < 20000; ++i) {
    unsigned short x = random_finite_half(30), y = random_finite_half(30);
    if (half_value(y) == 0.0) y = 0x3c00;
    a.push_back(to_half(x));
    b.push_back(to_half(y));
    // Floats near the midpoints between halves, and exact ties.
    const double m =
        half_value(x) +
        std::ldexp(1.0, std::max(std::ilogb(half_value(x) == 0 ? 1 : half_value(x)) - 11, -25));
    f.push_back(static_cast<float>(i % 3 == 0 ? m : half_value(x) * 1.0001));
  }
  const int n = static_cast<int>(a.size());
  DeviceBuffer<__half> da(a), db(b), ds(a.size()), dp(a.size()), dq(a.size()), dconv(a.size());
  DeviceBuffer<float> df(f);
  GA_LAUNCH(half_arith_kernel, dim3((n + 255) / 256), dim3(256), 0, nullptr,
            static_cast<const __half*>(da.get()), static_cast<const __half*>(db.get()), ds.get(),
            dp.get(), dq.get(), static_cast<const float*>(df.get()), dconv.get(), n);
  const auto s = ds.read(), p = dp.read(), q = dq.read(), conv = dconv.read();
  int wrong = 0;
  for (int i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    const double x = half_value(__half_as_ushort(a[k])), y = half_value(__half_as_ushort(b[k]));
    // x + y and x * y are exact in double; x / y is not, but rounding it to double and then to
    // half is innocuous (53 >= 2 * 11 + 2).
    if (__half_as_ushort(s[k]) != reference_half(x + y)) ++wrong;
    if (__half_as_ushort(p[k]) != reference_half(x * y)) ++wrong;
    if (__half_as_ushort(q[k]) != reference_half(x / y)) ++wrong;
    if (__half_as_ushort(conv[k]) != reference_half(f[k])) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace gradaccum
