// Atomics from many threads and blocks, and a few intrinsics.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/launch.cuh"
#include "emu_test_util.h"

namespace gradaccum {
namespace {

using emu_test::DeviceBuffer;

struct Counters {
  float f;
  int i;
  unsigned u;
  unsigned long long ull;
  double d;
  int max;
  int min;
  unsigned bits;
  unsigned wrap;
  int cas_count;
  int exch;
};

__global__ void hammer(Counters* c) {
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  atomicAdd(&c->f, 1.0f);
  atomicAdd(&c->i, 2);
  atomicAdd(&c->u, 3u);
  atomicAdd(&c->ull, 5ull);
  atomicAdd(&c->d, 0.5);
  atomicMax(&c->max, (t * 7919) % 10007);
  atomicMin(&c->min, -((t * 31) % 1009));
  atomicOr(&c->bits, 1u << (t % 32));
  atomicInc(&c->wrap, 99u);
  // An increment through a compare-and-swap loop.
  int old = atomicAdd(&c->cas_count, 0);
  for (;;) {
    const int seen = atomicCAS(&c->cas_count, old, old + 1);
    if (seen == old) break;
    old = seen;
  }
  atomicExch(&c->exch, t);
}

TEST(EmuAtomics, ManyThreadsOfManyBlocks) {
  const int blocks = 40, threads = 256, n = blocks * threads;
  Counters init{};
  init.min = 0;
  DeviceBuffer<Counters> dc(std::vector<Counters>{init});
  GA_LAUNCH(hammer, dim3(blocks), dim3(threads), 0, nullptr, dc.get());
  const Counters c = dc.read()[0];
  EXPECT_EQ(c.f, static_cast<float>(n));
  EXPECT_EQ(c.i, 2 * n);
  EXPECT_EQ(c.u, 3u * n);
  EXPECT_EQ(c.ull, 5ull * n);
  EXPECT_EQ(c.d, 0.5 * n);
  int mx = 0, mn = 0;
  for (int t = 0; t < n; ++t) {
    mx = std::max(mx, (t * 7919) % 10007);
    mn = std::min(mn, -((t * 31) % 1009));
  }
  EXPECT_EQ(c.max, mx);
  EXPECT_EQ(c.min, mn);
  EXPECT_EQ(c.bits, 0xffffffffu);
  EXPECT_EQ(c.wrap, static_cast<unsigned>(n % 100));
  EXPECT_EQ(c.cas_count, n);
  EXPECT_GE(c.exch, 0);
  EXPECT_LT(c.exch, n);
}

__global__ void intrinsics(const float* in, float* out, int* iout) {
  const float x = in[0];
  const float y = in[1];
  out[0] = __fadd_rn(x, y);
  out[1] = __fadd_rz(x, y);
  out[2] = __fadd_ru(x, y);
  out[3] = __fadd_rd(x, y);
  out[4] = __fmaf_rn(x, y, -x * y);  // the rounding error of x * y
  out[5] = __expf(1.0f);
  out[6] = __fdividef(6.0f, 3.0f);
  out[7] = rsqrtf(4.0f);
  iout[0] = __float2int_rn(2.5f);
  iout[1] = __float2int_rn(3.5f);
  iout[2] = __float2int_rz(-2.7f);
  iout[3] = __float2int_rd(-2.2f);
  iout[4] = __float2int_rn(3.0e10f);
  iout[5] = __float2int_rn(__int_as_float(0x7fc00000));
  iout[6] = __popc(0xf0f0u);
  iout[7] = __clz(1);
  iout[8] = static_cast<int>(__brev(1u));
  iout[9] = __ffs(0x100);
  iout[10] = min(3, -4);
  iout[11] = static_cast<int>(max(3u, 9u));
}

TEST(EmuAtomics, IntrinsicsRoundAsTheirNamesSay) {
  const float x = 1.0f;
  const float y = std::ldexp(1.0f, -30);  // x + y is not representable
  DeviceBuffer<float> din(std::vector<float>{x, y});
  DeviceBuffer<float> dout(8);
  DeviceBuffer<int> diout(12);
  GA_LAUNCH(intrinsics, dim3(1), dim3(1), 0, nullptr, static_cast<const float*>(din.get()),
            dout.get(), diout.get());
  const auto out = dout.read();
  const auto iout = diout.read();
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 1.0f);
  EXPECT_EQ(out[2], std::nextafter(1.0f, 2.0f));
  EXPECT_EQ(out[3], 1.0f);
  EXPECT_EQ(out[4], 0.0f);  // x * y is exact here
  EXPECT_NEAR(out[5], 2.7182817f, 2e-6f);
  EXPECT_EQ(out[6], 2.0f);
  EXPECT_EQ(out[7], 0.5f);
  EXPECT_EQ(iout[0], 2);
  EXPECT_EQ(iout[1], 4);
  EXPECT_EQ(iout[2], -2);
  EXPECT_EQ(iout[3], -3);
  EXPECT_EQ(iout[4], std::numeric_limits<int>::max());
  EXPECT_EQ(iout[5], 0);
  EXPECT_EQ(iout[6], 8);
  EXPECT_EQ(iout[7], 31);
  EXPECT_EQ(static_cast<unsigned>(iout[8]), 0x80000000u);
  EXPECT_EQ(iout[9], 9);
  EXPECT_EQ(iout[10], -4);
  EXPECT_EQ(iout[11], 9);
}

}  // namespace
}  // namespace gradaccum
