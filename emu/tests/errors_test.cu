// Kernel errors are gradaccum::Error naming the kernel, never a hang; launches outside sm_90's
// limits fail with a clear message.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/launch.cuh"
#include "emu_test_util.h"
#if defined(GRADACCUM_CUDA_EMULATOR)
#include "emu/schedule.h"
#endif

namespace gradaccum {
namespace {

using emu_test::DeviceBuffer;
using emu_test::error_of;
using ::testing::HasSubstr;

__global__ void fill_kernel(int* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = i;
}

#if defined(GRADACCUM_CUDA_EMULATOR)
__global__ void early_exit_before_barrier(int* out) {
  if (threadIdx.x >= 16) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void barriers_on_two_lines(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void half_warp_shuffles_while_the_rest_waits_at_a_barrier(int* out) {
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_sync(0xffffffffu, v, 0);
  __syncthreads();
  out[threadIdx.x] = v;
}

__global__ void shuffle_with_exited_lanes(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
}

__global__ void shuffle_from_a_lane_outside_the_mask(int* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_sync(0x0000ffffu, static_cast<int>(threadIdx.x), 20);
  }
}

__global__ void shuffle_with_a_bad_width(int* out) {
  out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0, 3);
}

__global__ void mixed_collectives(int* out) {
  int v = 0;
  if (threadIdx.x % 2 == 0) {
    v = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
  } else {
    v = static_cast<int>(__ballot_sync(0xffffffffu, 1));
  }
  out[threadIdx.x] = v;
}

__global__ void traps(int* out) {
  if (threadIdx.x == 3) __trap();
  out[threadIdx.x] = 1;
}

void expect_device_still_works() {
  DeviceBuffer<int> out(100);
  GA_LAUNCH(fill_kernel, dim3(4), dim3(32), 0, nullptr, out.get(), 100);
  const auto v = out.read();
  for (int i = 0; i < 100; ++i)
    ASSERT_EQ(v[static_cast<std::size_t>(i)], i);
}

TEST(EmuErrors, DivergentBarrierNamesTheKernel) {
  for (const char* schedule : {"forward", "reverse", "random:5"}) {
    SCOPED_TRACE(schedule);
    emu::ScopedSchedule scoped(schedule);
    DeviceBuffer<int> out(32);
    const std::string e = error_of(
        [&] { GA_LAUNCH(early_exit_before_barrier, dim3(2), dim3(32), 0, nullptr, out.get()); });
    EXPECT_THAT(e, HasSubstr("early_exit_before_barrier"));
    EXPECT_THAT(e, HasSubstr("divergent barrier"));
    EXPECT_THAT(e, HasSubstr("block (0,0,0)"));
  }
  expect_device_still_works();
}

TEST(EmuErrors, BarriersOnDifferentLinesAreDivergent) {
  DeviceBuffer<int> out(64);
  const std::string e =
      error_of([&] { GA_LAUNCH(barriers_on_two_lines, dim3(1), dim3(64), 0, nullptr, out.get()); });
  EXPECT_THAT(e, HasSubstr("barriers_on_two_lines"));
  EXPECT_THAT(e, HasSubstr("divergent barrier"));
  EXPECT_THAT(e, HasSubstr("errors_test.cu"));
  expect_device_still_works();
}

TEST(EmuErrors, DeadlockIsAnErrorNotAHang) {
  DeviceBuffer<int> out(64);
  const std::string e = error_of([&] {
    GA_LAUNCH(half_warp_shuffles_while_the_rest_waits_at_a_barrier, dim3(1), dim3(64), 0, nullptr,
              out.get());
  });
  EXPECT_THAT(e, HasSubstr("half_warp_shuffles_while_the_rest_waits_at_a_barrier"));
  EXPECT_THAT(e, HasSubstr("deadlock"));
  EXPECT_THAT(e, HasSubstr("__shfl_sync"));
  expect_device_still_works();
}

TEST(EmuErrors, WarpCollectiveWithExitedLanesIsAnError) {
  for (const char* schedule : {"forward", "reverse"}) {
    SCOPED_TRACE(schedule);
    emu::ScopedSchedule scoped(schedule);
    DeviceBuffer<int> out(32);
    const std::string e = error_of(
        [&] { GA_LAUNCH(shuffle_with_exited_lanes, dim3(1), dim3(32), 0, nullptr, out.get()); });
    EXPECT_THAT(e, HasSubstr("shuffle_with_exited_lanes"));
    EXPECT_THAT(e, HasSubstr("exited"));
  }
  expect_device_still_works();
}

TEST(EmuErrors, BadWarpCollectivesAreErrors) {
  DeviceBuffer<int> out(32);
  EXPECT_THAT(error_of([&] {
                GA_LAUNCH(shuffle_from_a_lane_outside_the_mask, dim3(1), dim3(32), 0, nullptr,
                          out.get());
              }),
              HasSubstr("reads lane 20, which is not taking part"));
  EXPECT_THAT(error_of([&] {
                GA_LAUNCH(shuffle_with_a_bad_width, dim3(1), dim3(32), 0, nullptr, out.get());
              }),
              HasSubstr("width 3"));
  EXPECT_THAT(
      error_of([&] { GA_LAUNCH(mixed_collectives, dim3(1), dim3(32), 0, nullptr, out.get()); }),
      HasSubstr("divergent warp collective"));
  EXPECT_THAT(error_of([&] { GA_LAUNCH(traps, dim3(1), dim3(32), 0, nullptr, out.get()); }),
              HasSubstr("thread (3,0,0): __trap() called"));
  expect_device_still_works();
}
#endif

__global__ void uses_dynamic_shared(int* out, int n) {
  GA_DYNAMIC_SHARED(int, smem);
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x))
    smem[i] = i;
  __syncthreads();
  int sum = 0;
  for (int i = 0; i < n; ++i)
    sum += smem[i];
  out[threadIdx.x] = sum;
}

TEST(EmuErrors, LaunchesBeyondSm90LimitsFail) {
  DeviceBuffer<int> out(1);
  EXPECT_THAT(
      error_of([&] { GA_LAUNCH(fill_kernel, dim3(1), dim3(2048), 0, nullptr, out.get(), 1); }),
      HasSubstr("at most 1024"));
  EXPECT_THAT(
      error_of([&] { GA_LAUNCH(fill_kernel, dim3(1), dim3(1, 1, 128), 0, nullptr, out.get(), 1); }),
      HasSubstr("z <= 64"));
  EXPECT_THAT(
      error_of([&] { GA_LAUNCH(fill_kernel, dim3(1, 70000), dim3(32), 0, nullptr, out.get(), 1); }),
      HasSubstr("exceeds sm_90's limits"));
  EXPECT_THAT(error_of([&] {
                GA_LAUNCH(fill_kernel, dim3(1), dim3(32), 300 * 1024, nullptr, out.get(), 1);
              }),
              HasSubstr("shared memory"));
  EXPECT_THAT(
      error_of([&] { GA_LAUNCH(fill_kernel, dim3(0), dim3(32), 0, nullptr, out.get(), 1); }),
      HasSubstr("fill_kernel"));
}

TEST(EmuErrors, DynamicSharedMemoryAbove48KiBNeedsTheAttribute) {
  const int n = 16 * 1024;  // 64 KiB of ints
  const std::size_t bytes = n * sizeof(int);
  DeviceBuffer<int> out(128);
  const std::string e = error_of(
      [&] { GA_LAUNCH(uses_dynamic_shared, dim3(1), dim3(128), bytes, nullptr, out.get(), n); });
#if defined(GRADACCUM_CUDA_EMULATOR)
  EXPECT_THAT(e, HasSubstr("cudaFuncAttributeMaxDynamicSharedMemorySize"));
#else
  EXPECT_FALSE(e.empty());
#endif
  ASSERT_EQ(cudaFuncSetAttribute(uses_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(bytes)),
            cudaSuccess);
  GA_LAUNCH(uses_dynamic_shared, dim3(2), dim3(128), bytes, nullptr, out.get(), n);
  const auto v = out.read();
  const int expected = static_cast<int>((static_cast<long long>(n) * (n - 1) / 2) & 0xffffffff);
  for (int x : v)
    EXPECT_EQ(x, expected);
}

TEST(EmuErrors, SmallDynamicSharedMemoryWorks) {
  DeviceBuffer<int> out(64);
  GA_LAUNCH(uses_dynamic_shared, dim3(3), dim3(64), 100 * sizeof(int), nullptr, out.get(), 100);
  for (int x : out.read())
    EXPECT_EQ(x, 4950);
}

}  // namespace
}  // namespace gradaccum
