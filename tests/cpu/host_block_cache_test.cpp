// The host block cache behind CPU tensors (core/host_block_cache.h).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/host_block_cache.h"
#include "core/tensor.h"

namespace gradaccum {
namespace {

// Restores the default capacity (and empties the cache) whatever a test did.
struct CacheReset {
  std::size_t saved = host_cache::capacity();
  CacheReset() { host_cache::empty(); }
  ~CacheReset() {
    host_cache::set_capacity(saved);
    host_cache::empty();
  }
};

TEST(HostBlockCache, ALargeBlockIsReusedForTheSameSize) {
  CacheReset reset;
  const std::size_t bytes = host_cache::kMinCachedBytes * 3 + 64;
  void* a = host_cache::allocate(bytes);
  host_cache::release(a, bytes);
  EXPECT_EQ(host_cache::stats().cached_bytes, bytes);
  const std::size_t hits = host_cache::stats().hits;
  void* b = host_cache::allocate(bytes);
  EXPECT_EQ(a, b);
  EXPECT_EQ(host_cache::stats().hits, hits + 1);
  EXPECT_EQ(host_cache::stats().cached_bytes, 0u);
  // Another size is not served from it.
  host_cache::release(b, bytes);
  void* c = host_cache::allocate(bytes + 64);
  EXPECT_NE(c, a);
  host_cache::release(c, bytes + 64);
}

TEST(HostBlockCache, BlocksAreAlignedAndWritable) {
  CacheReset reset;
  for (std::size_t bytes : {std::size_t{1}, std::size_t{100}, host_cache::kMinCachedBytes,
                            host_cache::kMinCachedBytes * 5 + 4}) {
    for (int round = 0; round < 2; ++round) {  // fresh, then (for large sizes) reused
      auto* p = static_cast<unsigned char*>(host_cache::allocate(bytes));
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u) << bytes;
      p[0] = 1;
      p[bytes - 1] = 2;
      host_cache::release(p, bytes);
    }
  }
}

TEST(HostBlockCache, SmallBlocksAreNotKept) {
  CacheReset reset;
  const std::size_t bytes = host_cache::kMinCachedBytes - 64;
  void* p = host_cache::allocate(bytes);
  host_cache::release(p, bytes);
  EXPECT_EQ(host_cache::stats().cached_bytes, 0u);
}

TEST(HostBlockCache, CapacityBoundsWhatIsKept) {
  CacheReset reset;
  const std::size_t bytes = host_cache::kMinCachedBytes * 2;
  host_cache::set_capacity(bytes * 3);
  std::vector<void*> blocks;
  for (int i = 0; i < 5; ++i)
    blocks.push_back(host_cache::allocate(bytes));
  for (void* p : blocks)
    host_cache::release(p, bytes);
  EXPECT_EQ(host_cache::stats().cached_bytes, bytes * 3);
  host_cache::set_capacity(bytes);  // shrinking frees the excess now
  EXPECT_EQ(host_cache::stats().cached_bytes, bytes);
  host_cache::set_capacity(0);  // disabled: nothing kept
  EXPECT_EQ(host_cache::stats().cached_bytes, 0u);
  void* p = host_cache::allocate(bytes);
  host_cache::release(p, bytes);
  EXPECT_EQ(host_cache::stats().cached_bytes, 0u);
}

TEST(HostBlockCache, TensorsOfARepeatedStepReuseTheirMemory) {
  CacheReset reset;
  const Shape shape{256, 1024};  // 1 MiB: cached
  { Tensor warm = Tensor::empty(shape, DType::f32); }
  const std::size_t misses = host_cache::stats().misses;
  for (int step = 0; step < 10; ++step) {
    Tensor t = Tensor::full(shape, static_cast<float>(step), DType::f32);
    EXPECT_EQ(t.to_vector()[12345], static_cast<float>(step));
  }
  EXPECT_EQ(host_cache::stats().misses, misses);
}

TEST(HostBlockCache, HugeRequestsStillFailWithOutOfMemory) {
  CacheReset reset;
  EXPECT_THROW(host_cache::allocate(~std::size_t{0} - 8), OutOfMemoryError);
}

}  // namespace
}  // namespace gradaccum
