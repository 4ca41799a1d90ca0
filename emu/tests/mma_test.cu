// Tensor-core emulation (kernels/ptx.cuh): mma.m16n8k16 against a float64 reference for random
// fragments, the ldmatrix layouts, and ldmatrix + mma together as a GEMM uses them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/launch.cuh"
#include "emu_test_util.h"
#include "kernels/ptx.cuh"

namespace gradaccum {
namespace {

using emu_test::DeviceBuffer;

__device__ unsigned pack(unsigned short lo, unsigned short hi) {
  return static_cast<unsigned>(lo) | (static_cast<unsigned>(hi) << 16);
}

// One warp. a: 16x16 row-major, b: 16x8 row-major (b[k * 8 + n]), c, d: 16x8 row-major; the
// fragments are built here from the PTX ISA's layout tables, independently of kernels/ptx.cuh.
__global__ void mma_from_global(const unsigned short* a, const unsigned short* b, const float* c,
                                float* d) {
  const int lane = static_cast<int>(threadIdx.x);
  const int g = lane / 4;
  const int t = lane % 4;
  const auto A = [&](int r, int k) { return a[r * 16 + k]; };
  const auto B = [&](int k, int n) { return b[k * 8 + n]; };
  const unsigned af[4] = {
      pack(A(g, 2 * t), A(g, 2 * t + 1)), pack(A(g + 8, 2 * t), A(g + 8, 2 * t + 1)),
      pack(A(g, 2 * t + 8), A(g, 2 * t + 9)), pack(A(g + 8, 2 * t + 8), A(g + 8, 2 * t + 9))};
  const unsigned bf[2] = {pack(B(2 * t, g), B(2 * t + 1, g)),
                          pack(B(2 * t + 8, g), B(2 * t + 9, g))};
  const float cf[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                       c[(g + 8) * 8 + 2 * t + 1]};
  float df[4];
  mma_m16n8k16_f32f16(df, af, bf, cf);
  d[g * 8 + 2 * t] = df[0];
  d[g * 8 + 2 * t + 1] = df[1];
  d[(g + 8) * 8 + 2 * t] = df[2];
  d[(g + 8) * 8 + 2 * t + 1] = df[3];
}

// The same product with the operands staged in shared memory and loaded with ldmatrix, as a
// tensor-core GEMM does: A with ldmatrix_x4, B (row-major k x n) with ldmatrix_x2_trans.
__global__ void mma_through_ldmatrix(const unsigned short* a, const unsigned short* b,
                                     const float* c, float* d) {
  __shared__ __align__(16) unsigned short as[16][16];
  __shared__ __align__(16) unsigned short bs[16][8];
  const int lane = static_cast<int>(threadIdx.x);
  for (int i = lane; i < 256; i += 32)
    as[i / 16][i % 16] = a[i];
  for (int i = lane; i < 128; i += 32)
    bs[i / 8][i % 8] = b[i];
  __syncwarp();
  unsigned af[4];
  unsigned bf[2];
  ldmatrix_x4(af, &as[lane % 16][(lane / 16) * 8]);
  ldmatrix_x2_trans(bf, &bs[lane % 16][0]);
  const int g = lane / 4;
  const int t = lane % 4;
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                  c[(g + 8) * 8 + 2 * t + 1]};
  mma_m16n8k16_f32f16(acc, af, bf, acc);  // d aliasing c, as accumulating code does
  d[g * 8 + 2 * t] = acc[0];
  d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2];
  d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

// ldmatrix of a 16x16 tile of distinct 16-bit values; out[lane * 16 + 4 * variant + i] = r[i].
__global__ void ldmatrix_layouts(const unsigned short* tile, unsigned* out) {
  __shared__ __align__(16) unsigned short s[16][16];
  const int lane = static_cast<int>(threadIdx.x);
  for (int i = lane; i < 256; i += 32)
    s[i / 16][i % 16] = tile[i];
  __syncwarp();
  const void* row = &s[lane % 16][(lane / 16) * 8];
  unsigned r[4];
  ldmatrix_x4(r, row);
  for (int i = 0; i < 4; ++i)
    out[lane * 16 + i] = r[i];
  ldmatrix_x4_trans(r, row);
  for (int i = 0; i < 4; ++i)
    out[lane * 16 + 4 + i] = r[i];
  ldmatrix_x2(r, row);
  for (int i = 0; i < 2; ++i)
    out[lane * 16 + 8 + i] = r[i];
  ldmatrix_x2_trans(r, row);
  for (int i = 0; i < 2; ++i)
    out[lane * 16 + 12 + i] = r[i];
}

unsigned short half_bits(float x) {
  return __half_as_ushort(__float2half_rn(x));
}
double half_value(unsigned short bits) {
  return __half2float(__ushort_as_half(bits));
}

struct Problem {
  std::vector<unsigned short> a, b;
  std::vector<float> c;
};

Problem random_problem(unsigned seed, bool integers) {
  Problem p{std::vector<unsigned short>(256), std::vector<unsigned short>(128),
            std::vector<float>(128)};
  std::uint64_t s = seed;
  const auto next = [&] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / 9007199254740992.0;  // [0, 1)
  };
  const auto value = [&](double scale) {
    return integers ? std::floor(next() * 9.0) - 4.0 : (next() * 2.0 - 1.0) * scale;
  };
  for (auto& x : p.a)
    x = half_bits(static_cast<float>(value(3.0)));
  for (auto& x : p.b)
    x = half_bits(static_cast<float>(value(3.0)));
  for (auto& x : p.c)
    x = static_cast<float>(value(10.0));
  return p;
}

template <typename Kernel>
void check_against_float64(Kernel kernel, const char* name) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    const bool integers = seed <= 3;  // exact in float: must match exactly
    const Problem p = random_problem(seed, integers);
    DeviceBuffer<unsigned short> da(p.a);
    DeviceBuffer<unsigned short> db(p.b);
    DeviceBuffer<float> dc(p.c);
    DeviceBuffer<float> dd(128);
    GA_LAUNCH(kernel, dim3(1), dim3(32), 0, nullptr, static_cast<const unsigned short*>(da.get()),
              static_cast<const unsigned short*>(db.get()), static_cast<const float*>(dc.get()),
              dd.get());
    const auto d = dd.read();
    for (int i = 0; i < 16; ++i) {
      for (int j = 0; j < 8; ++j) {
        double exact = p.c[static_cast<std::size_t>(i * 8 + j)];
        double magnitude = std::fabs(exact);
        for (int k = 0; k < 16; ++k) {
          const double term = half_value(p.a[static_cast<std::size_t>(i * 16 + k)]) *
                              half_value(p.b[static_cast<std::size_t>(k * 8 + j)]);
          exact += term;
          magnitude += std::fabs(term);
        }
        const double got = d[static_cast<std::size_t>(i * 8 + j)];
        SCOPED_TRACE(testing::Message()
                     << name << " seed " << seed << " D[" << i << "][" << j << "]");
        if (integers) {
          EXPECT_EQ(got, exact);
        } else {
          // 16 additions in float, each off by at most half an ulp of a partial sum.
          EXPECT_NEAR(got, exact, 16 * std::ldexp(magnitude, -24));
        }
      }
    }
  }
}

TEST(EmuTensorCore, MmaMatchesFloat64ReferenceForRandomFragments) {
  check_against_float64(mma_from_global, "mma_from_global");
}

TEST(EmuTensorCore, LdmatrixFeedsMmaLikeAGemm) {
  check_against_float64(mma_through_ldmatrix, "mma_through_ldmatrix");
}

TEST(EmuTensorCore, LdmatrixLayouts) {
  std::vector<unsigned short> tile(256);
  for (int i = 0; i < 256; ++i)
    tile[static_cast<std::size_t>(i)] = static_cast<unsigned short>(i);
  DeviceBuffer<unsigned short> dt(tile);
  DeviceBuffer<unsigned> dout(32 * 16);
  GA_LAUNCH(ldmatrix_layouts, dim3(1), dim3(32), 0, nullptr,
            static_cast<const unsigned short*>(dt.get()), dout.get());
  const auto out = dout.read();
  // Lane 8m + r passes row r of matrix m: matrices (rows 0-7 | 8-15) x (cols 0-7 | 8-15) in the
  // order m = 0: (0, 0), 1: (8, 0), 2: (0, 8), 3: (8, 8).
  const auto value = [](int m, int row, int col) {
    return static_cast<unsigned>((row + (m % 2) * 8) * 16 + col + (m / 2) * 8);
  };
  for (int lane = 0; lane < 32; ++lane) {
    for (int m = 0; m < 4; ++m) {
      const unsigned plain =
          value(m, lane / 4, 2 * (lane % 4)) | (value(m, lane / 4, 2 * (lane % 4) + 1) << 16);
      const unsigned trans =
          value(m, 2 * (lane % 4), lane / 4) | (value(m, 2 * (lane % 4) + 1, lane / 4) << 16);
      SCOPED_TRACE(testing::Message() << "lane " << lane << " matrix " << m);
      EXPECT_EQ(out[static_cast<std::size_t>(lane * 16 + m)], plain);
      EXPECT_EQ(out[static_cast<std::size_t>(lane * 16 + 4 + m)], trans);
      if (m < 2) {
        EXPECT_EQ(out[static_cast<std::size_t>(lane * 16 + 8 + m)], plain);
        EXPECT_EQ(out[static_cast<std::size_t>(lane * 16 + 12 + m)], trans);
      }
    }
  }
}

}  // namespace
}  // namespace gradaccum
