// A tiled shared-memory GEMM under every schedule, and the same kernel with a barrier missing,
// which the reverse schedule exposes.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <vector>

#include "core/launch.cuh"
#include "emu_test_util.h"
#if defined(GRADACCUM_CUDA_EMULATOR)
#include "emu/schedule.h"
#endif

namespace gradaccum {
namespace {

constexpr int kTile = 16;

// C = A * B (row-major, m x k times k x n); kSyncAfterLoad / kSyncAfterUse: the two barriers.
template <bool kSyncAfterLoad, bool kSyncAfterUse>
__global__ void tiled_gemm(const float* a, const float* b, float* c, int m, int n, int k) {
  __shared__ float as[kTile][kTile];
  __shared__ float bs[kTile][kTile];
  const int tx = static_cast<int>(threadIdx.x);
  const int ty = static_cast<int>(threadIdx.y);
  const int row = static_cast<int>(blockIdx.y) * kTile + ty;
  const int col = static_cast<int>(blockIdx.x) * kTile + tx;
  float acc = 0.0f;
  for (int t = 0; t < k; t += kTile) {
    as[ty][tx] = (row < m && t + tx < k) ? a[row * k + t + tx] : 0.0f;
    bs[ty][tx] = (t + ty < k && col < n) ? b[(t + ty) * n + col] : 0.0f;
    if (kSyncAfterLoad) __syncthreads();
    for (int i = 0; i < kTile; ++i)
      acc = __fmaf_rn(as[ty][i], bs[i][tx], acc);
    if (kSyncAfterUse) __syncthreads();
  }
  if (row < m && col < n) c[row * n + col] = acc;
}

std::vector<float> values(int count, unsigned seed) {
  std::vector<float> v(static_cast<std::size_t>(count));
  unsigned s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = static_cast<float>((s >> 9) % 2001) / 1000.0f - 1.0f;
  }
  return v;
}

// The same fma chain on the host (tiles of zeros add nothing: fma(0, 0, acc) == acc).
std::vector<float> reference(const std::vector<float>& a, const std::vector<float>& b, int m, int n,
                             int k) {
  std::vector<float> c(static_cast<std::size_t>(m) * n);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int p = 0; p < k; ++p)
        acc = std::fma(a[i * k + p], b[p * n + j], acc);
      c[static_cast<std::size_t>(i) * n + j] = acc;
    }
  }
  return c;
}

template <bool kSyncAfterLoad, bool kSyncAfterUse>
std::vector<float> run_gemm(const std::vector<float>& a, const std::vector<float>& b, int m, int n,
                            int k) {
  emu_test::DeviceBuffer<float> da(a);
  emu_test::DeviceBuffer<float> db(b);
  emu_test::DeviceBuffer<float> dc(static_cast<std::size_t>(m) * n);
  const dim3 grid((n + kTile - 1) / kTile, (m + kTile - 1) / kTile);
  const dim3 block(kTile, kTile);
  GA_LAUNCH((tiled_gemm<kSyncAfterLoad, kSyncAfterUse>), grid, block, 0, nullptr,
            static_cast<const float*>(da.get()), static_cast<const float*>(db.get()), dc.get(), m,
            n, k);
  return dc.read();
}

TEST(EmuSchedule, TiledGemmIsRightUnderEverySchedule) {
  const int m = 40, n = 56, k = 72;  // partial tiles on every side
  const auto a = values(m * k, 1);
  const auto b = values(k * n, 2);
  const auto expected = reference(a, b, m, n, k);
#if defined(GRADACCUM_CUDA_EMULATOR)
  for (const char* schedule : {"forward", "reverse", "random:1", "random:2", "random:77"}) {
    SCOPED_TRACE(schedule);
    emu::ScopedSchedule scoped(schedule);
    EXPECT_EQ((run_gemm<true, true>(a, b, m, n, k)), expected);
  }
#else
  EXPECT_EQ((run_gemm<true, true>(a, b, m, n, k)), expected);
#endif
}

#if defined(GRADACCUM_CUDA_EMULATOR)
TEST(EmuSchedule, MissingBarrierAfterUseIsExposedByTheReverseSchedule) {
#if defined(GA_EMU_TEST_TSAN)
  GTEST_SKIP()
      << "a planted race: ThreadSanitizer reports it (emu_tsan_reports_shared_memory_race)";
#endif
  const int m = 32, n = 32, k = 64;
  const auto a = values(m * k, 3);
  const auto b = values(k * n, 4);
  const auto expected = reference(a, b, m, n, k);
  emu::ScopedSchedule scoped("reverse");
  EXPECT_NE((run_gemm<true, false>(a, b, m, n, k)), expected);
}

TEST(EmuSchedule, MissingBarrierAfterLoadIsExposedByTheReverseSchedule) {
#if defined(GA_EMU_TEST_TSAN)
  GTEST_SKIP()
      << "a planted race: ThreadSanitizer reports it (emu_tsan_reports_shared_memory_race)";
#endif
  const int m = 32, n = 32, k = 64;
  const auto a = values(m * k, 5);
  const auto b = values(k * n, 6);
  const auto expected = reference(a, b, m, n, k);
  emu::ScopedSchedule scoped("reverse");
  EXPECT_NE((run_gemm<false, true>(a, b, m, n, k)), expected);
}

TEST(EmuSchedule, ParsesAndReportsSchedules) {
  EXPECT_EQ(emu::to_string(emu::parse_schedule("random:42")), "random:42");
  EXPECT_EQ(emu::parse_schedule("reverse").kind, emu::ScheduleKind::Reverse);
  EXPECT_THROW(emu::parse_schedule("sideways"), Error);
  EXPECT_THROW(emu::parse_schedule("random:x"), Error);
  const emu::Schedule before = emu::current_schedule();
  {
    emu::ScopedSchedule scoped("random:9");
    EXPECT_EQ(emu::to_string(emu::current_schedule()), "random:9");
  }
  EXPECT_EQ(emu::to_string(emu::current_schedule()), emu::to_string(before));
}

// Speed: a 256^3 GEMM (256 blocks of 256 threads, 16 barrier phases each).
TEST(EmuSchedule, Gemm256IsFastEnough) {
#if defined(GA_EMU_TEST_SANITIZED)
  GTEST_SKIP() << "timings mean nothing under a sanitizer";
#endif
  const int s = 256;
  const auto a = values(s * s, 7);
  const auto b = values(s * s, 8);
  (void)run_gemm<true, true>(a, b, 32, 32, 32);  // warm up the fibers
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  const auto c = run_gemm<true, true>(a, b, s, s, s);
  const double cpu_ms = 1000.0 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ emu ] 256^3 tiled GEMM: %.1f ms wall, %.1f ms CPU (schedule %s)\n", ms, cpu_ms,
              emu::to_string(emu::current_schedule()).c_str());
  RecordProperty("gemm256_ms", static_cast<int>(ms));
  EXPECT_EQ(c[0], reference(std::vector<float>(a.begin(), a.begin() + s), b, 1, s, s)[0]);
  EXPECT_LT(ms, 5000.0);
}

__global__ void axpy(float alpha, const float* x, float* y, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = __fmaf_rn(alpha, x[i], y[i]);
}

// Speed: a barrier-free kernel over a million threads runs each block on one fiber.
TEST(EmuSchedule, MillionThreadElementwiseIsFastEnough) {
#if defined(GA_EMU_TEST_SANITIZED)
  GTEST_SKIP() << "timings mean nothing under a sanitizer";
#endif
  const int n = 1 << 20;
  std::vector<float> x(static_cast<std::size_t>(n), 2.0f), y(static_cast<std::size_t>(n), 1.0f);
  emu_test::DeviceBuffer<float> dx(x);
  emu_test::DeviceBuffer<float> dy(y);
  const emu::Stats before = emu::stats();
  const std::clock_t cpu_start = std::clock();
  GA_LAUNCH(axpy, dim3(n / 256), dim3(256), 0, nullptr, 3.0f, static_cast<const float*>(dx.get()),
            dy.get(), n);
  const double cpu_ms = 1000.0 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  const emu::Stats after = emu::stats();
  std::printf("[ emu ] 2^20-thread axpy: %.1f ms CPU, %llu fiber switches for %llu blocks\n",
              cpu_ms, static_cast<unsigned long long>(after.fiber_switches - before.fiber_switches),
              static_cast<unsigned long long>(after.blocks - before.blocks));
  EXPECT_EQ(after.fiber_switches - before.fiber_switches, 2 * (after.blocks - before.blocks));
  for (float v : dy.read())
    ASSERT_EQ(v, 7.0f);
}
#endif

}  // namespace
}  // namespace gradaccum
