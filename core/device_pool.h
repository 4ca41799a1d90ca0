// A device memory pool for graph capture. While a PoolScope is active on a thread, device
// Storage allocated on that thread takes its block from the pool (an exact-size free block, else
// cudaMalloc), and freeing the Storage returns the block to the pool instead of cudaFree. So a
// micro-step run once op by op with the pool (every temporary allocated, then freed into the
// pool) can be captured with the same pool: the same sizes come back from the free list, and no
// cudaMalloc / cudaFree happens during the capture, which would invalidate it.
//
// Blocks are handed out again in the order work is issued, so the pool must serve one stream (a
// replayed graph and its temporaries are ordered on it). Its memory is freed when the pool's last
// owner and its last outstanding block are gone (each block holds the pool).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace gradaccum {

class DevicePool {
 public:
  static std::shared_ptr<DevicePool> create();
  ~DevicePool();  // frees the cached blocks; never throws
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // A block of exactly `bytes`: a cached one, else a new device allocation (throws
  // OutOfMemoryError, or the CUDA error, e.g. when a capture forbids cudaMalloc).
  void* allocate(std::size_t bytes);
  // Back to the free list (never throws).
  void release(void* ptr, std::size_t bytes) noexcept;

  std::size_t device_allocations() const;  // cudaMalloc calls so far
  std::size_t cached_bytes() const;        // bytes on the free list

 private:
  DevicePool() = default;

  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0;
  std::size_t device_allocations_ = 0;
};

// The pool that device allocations on this thread use (null: none, plain cudaMalloc).
DevicePool* current_device_pool() noexcept;
std::shared_ptr<DevicePool> current_device_pool_owner();

// Makes `pool` this thread's current pool for its scope, restoring the previous one.
class PoolScope {
 public:
  explicit PoolScope(std::shared_ptr<DevicePool> pool) noexcept;
  ~PoolScope();
  PoolScope(const PoolScope&) = delete;
  PoolScope& operator=(const PoolScope&) = delete;

 private:
  std::shared_ptr<DevicePool> previous_;
};

}  // namespace gradaccum
