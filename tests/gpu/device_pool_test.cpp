// The device memory pool (core/device_pool.h): exact-size reuse while a PoolScope is active, no
// device allocation for a repeated sequence of sizes, blocks that keep the pool alive, and all of
// its memory returned once the pool and its blocks are gone.
#include <gtest/gtest.h>

#include <utility>

#include "core/device_pool.h"
#include "core/tensor.h"
#include "test_util.h"

namespace gradaccum::test {
namespace {

TEST(DevicePool, ReusesFreedBlocksOfTheSameSize) {
  GA_REQUIRE_CUDA();
  const std::size_t before = cuda_bytes_in_use();
  auto pool = DevicePool::create();
  const void* first = nullptr;
  {
    PoolScope scope(pool);
    Tensor a = Tensor::zeros({16, 8}, DType::f32, Device::CUDA);
    first = a.raw_data();
  }
  EXPECT_EQ(pool->device_allocations(), 1u);
  EXPECT_EQ(pool->cached_bytes(), 16u * 8u * 4u);
  {
    PoolScope scope(pool);
    Tensor b = Tensor::zeros({8, 16}, DType::f32, Device::CUDA);  // same bytes: the same block
    EXPECT_EQ(b.raw_data(), first);
    Tensor c = Tensor::zeros({3}, DType::f32, Device::CUDA);  // another size: a new block
    EXPECT_NE(c.raw_data(), first);
  }
  EXPECT_EQ(pool->device_allocations(), 2u);
  Tensor outside = Tensor::zeros({16, 8}, DType::f32, Device::CUDA);  // no scope: not the pool
  EXPECT_NE(outside.raw_data(), first);
  EXPECT_EQ(pool->device_allocations(), 2u);
  outside = Tensor();
  pool.reset();
  EXPECT_EQ(cuda_bytes_in_use(), before);
}

TEST(DevicePool, TheSameSequenceOfSizesAllocatesNothingTheSecondTime) {
  GA_REQUIRE_CUDA();
  auto pool = DevicePool::create();
  const auto sequence = [] {
    Tensor a = Tensor::zeros({64}, DType::f32, Device::CUDA);
    Tensor b = Tensor::zeros({64}, DType::f32, Device::CUDA);  // two live blocks of one size
    { Tensor c = Tensor::zeros({7}, DType::f16, Device::CUDA); }
    Tensor d = Tensor::zeros({7}, DType::f16, Device::CUDA);  // reuses c's
  };
  {
    PoolScope scope(pool);
    sequence();
  }
  const std::size_t allocations = pool->device_allocations();
  EXPECT_EQ(allocations, 3u);
  {
    PoolScope scope(pool);
    sequence();
    sequence();
  }
  EXPECT_EQ(pool->device_allocations(), allocations);
}

TEST(DevicePool, BlocksKeepThePoolAliveAndScopesNest) {
  GA_REQUIRE_CUDA();
  const std::size_t before = cuda_bytes_in_use();
  Tensor kept;
  {
    auto pool = DevicePool::create();
    auto other = DevicePool::create();
    PoolScope scope(pool);
    {
      PoolScope inner(other);
      EXPECT_EQ(current_device_pool(), other.get());
    }
    EXPECT_EQ(current_device_pool(), pool.get());
    kept = Tensor::zeros({100}, DType::f32, Device::CUDA);
    Tensor freed = Tensor::zeros({50}, DType::f32, Device::CUDA);
  }
  EXPECT_EQ(current_device_pool(), nullptr);
  // The owner is gone; the pool lives on in `kept`, which is still usable.
  kept.zero_();
  EXPECT_EQ(kept.to_vector(), std::vector<float>(100, 0.0f));
  EXPECT_GT(cuda_bytes_in_use(), before);
  kept = Tensor();  // the last block: the pool frees everything
  EXPECT_EQ(cuda_bytes_in_use(), before);
}

}  // namespace
}  // namespace gradaccum::test
