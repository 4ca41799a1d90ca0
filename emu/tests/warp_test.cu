// Warp shuffles, votes, reductions and barriers with predicates, against host models.
#include <gtest/gtest.h>

#include <vector>

#include "core/launch.cuh"
#include "emu_test_util.h"

namespace gradaccum {
namespace {

using emu_test::DeviceBuffer;

// out[4 * t + 0..3]: idx, up, down, xor shuffles of in[t] with the given width.
__global__ void shuffles(const int* in, int* out, int width, int src, int delta) {
  const int t = static_cast<int>(threadIdx.x);
  const int v = in[t];
  out[4 * t + 0] = __shfl_sync(0xffffffffu, v, src, width);
  out[4 * t + 1] = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(delta), width);
  out[4 * t + 2] = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(delta), width);
  out[4 * t + 3] = __shfl_xor_sync(0xffffffffu, v, delta, width);
}

TEST(EmuWarp, ShufflesFollowCudaSemantics) {
  const int n = 64;
  std::vector<int> in(n);
  for (int i = 0; i < n; ++i)
    in[static_cast<std::size_t>(i)] = 1000 + 7 * i;
  for (int width : {32, 16, 8, 4, 2}) {
    for (int delta : {1, 2, 3}) {
      if (delta >= width) continue;
      const int src = 5;
      DeviceBuffer<int> din(in);
      DeviceBuffer<int> dout(4 * n);
      GA_LAUNCH(shuffles, dim3(1), dim3(n), 0, nullptr, static_cast<const int*>(din.get()),
                dout.get(), width, src, delta);
      const auto out = dout.read();
      for (int t = 0; t < n; ++t) {
        const int lane = t % 32;
        const int warp0 = t - lane;
        const int seg = lane - lane % width;  // the lane's segment start within the warp
        const int pos = lane % width;
        const int idx = warp0 + seg + src % width;
        const int up = pos >= delta ? t - delta : t;
        const int down = pos + delta < width ? t + delta : t;
        const int x = lane ^ delta;
        const int bfly = (x - x % width) == seg ? warp0 + x : t;
        SCOPED_TRACE(testing::Message() << "width " << width << " delta " << delta << " t " << t);
        EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 0)], in[static_cast<std::size_t>(idx)]);
        EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 1)], in[static_cast<std::size_t>(up)]);
        EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 2)], in[static_cast<std::size_t>(down)]);
        EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 3)], in[static_cast<std::size_t>(bfly)]);
      }
    }
  }
}

__global__ void warp_sums(const float* in, float* out, double* out_double) {
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  float v = in[t];
  double d = static_cast<double>(in[t]);
  for (int offset = 16; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
    d += __shfl_down_sync(0xffffffffu, d, static_cast<unsigned>(offset));
  }
  out[t] = v;
  if (threadIdx.x % 32 == 0) out_double[t / 32] = d;
}

TEST(EmuWarp, ButterflyReductionGivesEveryLaneTheSum) {
  const int blocks = 3, threads = 128, n = blocks * threads;
  std::vector<float> in(n);
  for (int i = 0; i < n; ++i)
    in[static_cast<std::size_t>(i)] = static_cast<float>(i % 17) - 8.0f;
  DeviceBuffer<float> din(in);
  DeviceBuffer<float> dout(n);
  DeviceBuffer<double> dsum(n / 32);
  GA_LAUNCH(warp_sums, dim3(blocks), dim3(threads), 0, nullptr,
            static_cast<const float*>(din.get()), dout.get(), dsum.get());
  const auto out = dout.read();
  const auto sums = dsum.read();
  for (int w = 0; w < n / 32; ++w) {
    float expected = 0.0f;
    for (int l = 0; l < 32; ++l)
      expected += in[static_cast<std::size_t>(32 * w + l)];
    for (int l = 0; l < 32; ++l)
      EXPECT_EQ(out[static_cast<std::size_t>(32 * w + l)], expected);
    EXPECT_EQ(sums[static_cast<std::size_t>(w)], static_cast<double>(expected));
  }
}

// A block of 48 threads: warp 1 has 16 lanes.
__global__ void votes(unsigned* out) {
  const unsigned t = threadIdx.x;
  const unsigned lane = t % 32;
  out[8 * t + 0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  out[8 * t + 1] = static_cast<unsigned>(__any_sync(0xffffffffu, lane == 7));
  out[8 * t + 2] = static_cast<unsigned>(__all_sync(0xffffffffu, lane < 40));
  out[8 * t + 3] = static_cast<unsigned>(__all_sync(0xffffffffu, lane != 5));
  out[8 * t + 4] = __activemask();
  out[8 * t + 5] = __reduce_add_sync(0xffffffffu, lane);
  out[8 * t + 6] = __match_any_sync(0xffffffffu, static_cast<int>(lane % 4));
  out[8 * t + 7] = __reduce_max_sync(0xffffffffu, lane * 3u);
}

TEST(EmuWarp, VotesReductionsAndPartialWarps) {
  const int n = 48;
  DeviceBuffer<unsigned> dout(8 * n);
  GA_LAUNCH(votes, dim3(2), dim3(n), 0, nullptr, dout.get());
  const auto out = dout.read();
  for (int t = 0; t < n; ++t) {
    const unsigned lanes = t < 32 ? 0xffffffffu : 0x0000ffffu;
    const unsigned count = t < 32 ? 32 : 16;
    unsigned ballot = 0, match = 0, sum = 0, mx = 0;
    for (unsigned l = 0; l < count; ++l) {
      if (l % 3 == 0) ballot |= 1u << l;
      if (l % 4 == static_cast<unsigned>(t % 32) % 4) match |= 1u << l;
      sum += l;
      mx = l * 3;
    }
    const auto at = [&](int k) { return out[static_cast<std::size_t>(8 * t + k)]; };
    SCOPED_TRACE(t);
    EXPECT_EQ(at(0), ballot);
    EXPECT_EQ(at(1), 1u);
    EXPECT_EQ(at(2), 1u);
    EXPECT_EQ(at(3), 0u);
    EXPECT_EQ(at(4), lanes);
    EXPECT_EQ(at(5), sum);
    EXPECT_EQ(at(6), match);
    EXPECT_EQ(at(7), mx);
  }
}

// Shared memory handed between lanes with __syncwarp, and the predicate barriers.
__global__ void syncwarp_and_predicates(int* out) {
  __shared__ int slots[64];
  const int t = static_cast<int>(threadIdx.x);
  slots[t] = t * t;
  __syncwarp();
  const int neighbour = slots[(t % 32 == 31) ? t - 31 : t + 1];
  const int count = __syncthreads_count(t % 5 == 0);
  const int all = __syncthreads_and(t < 64);
  const int any = __syncthreads_or(t == 63);
  const int none = __syncthreads_or(t > 100);
  out[4 * t + 0] = neighbour;
  out[4 * t + 1] = count;
  out[4 * t + 2] = all * 10 + any;
  out[4 * t + 3] = none;
}

TEST(EmuWarp, SyncwarpAndPredicateBarriers) {
  DeviceBuffer<int> dout(4 * 64);
  GA_LAUNCH(syncwarp_and_predicates, dim3(1), dim3(64), 0, nullptr, dout.get());
  const auto out = dout.read();
  for (int t = 0; t < 64; ++t) {
    const int next = (t % 32 == 31) ? t - 31 : t + 1;
    EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 0)], next * next);
    EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 1)], 13);
    EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 2)], 11);
    EXPECT_EQ(out[static_cast<std::size_t>(4 * t + 3)], 0);
  }
}

// Two independent half-warp groups shuffling with their own masks.
__global__ void half_warp_groups(int* out) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  out[threadIdx.x] = __shfl_sync(mask, static_cast<int>(lane) * 2, lane < 16 ? 3 : 19);
}

TEST(EmuWarp, DisjointMasksFormSeparateGroups) {
  DeviceBuffer<int> dout(32);
  GA_LAUNCH(half_warp_groups, dim3(1), dim3(32), 0, nullptr, dout.get());
  const auto out = dout.read();
  for (int l = 0; l < 32; ++l)
    EXPECT_EQ(out[static_cast<std::size_t>(l)], l < 16 ? 6 : 38);
}

__global__ void half_shuffles(const __half2* in, __half2* out, __half* low) {
  const int t = static_cast<int>(threadIdx.x);
  out[t] = __shfl_xor_sync(0xffffffffu, in[t], 1);
  low[t] = __shfl_sync(0xffffffffu, __low2half(in[t]), 31 - t);
}

TEST(EmuWarp, ShufflesMoveHalves) {
  std::vector<__half2> in;
  for (int i = 0; i < 32; ++i) {
    in.push_back(__floats2half2_rn(static_cast<float>(i), static_cast<float>(-i)));
  }
  DeviceBuffer<__half2> din(in);
  DeviceBuffer<__half2> dout(32);
  DeviceBuffer<__half> dlow(32);
  GA_LAUNCH(half_shuffles, dim3(1), dim3(32), 0, nullptr, static_cast<const __half2*>(din.get()),
            dout.get(), dlow.get());
  const auto out = dout.read();
  const auto low = dlow.read();
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(__low2float(out[static_cast<std::size_t>(i)]), static_cast<float>(i ^ 1));
    EXPECT_EQ(__high2float(out[static_cast<std::size_t>(i)]), -static_cast<float>(i ^ 1));
    EXPECT_EQ(__half2float(low[static_cast<std::size_t>(i)]), static_cast<float>(31 - i));
  }
}

}  // namespace
}  // namespace gradaccum
