#include "core/device_pool.h"

#include <utility>

#include "core/cuda_device.h"

namespace gradaccum {
namespace {
thread_local std::shared_ptr<DevicePool> t_pool;
}

std::shared_ptr<DevicePool> DevicePool::create() {
  return std::shared_ptr<DevicePool>(new DevicePool());
}

DevicePool::~DevicePool() {
  for (auto& [bytes, blocks] : free_) {
    for (void* p : blocks)
      detail::cuda_release(p, bytes);
  }
}

void* DevicePool::allocate(std::size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = free_.find(bytes);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= bytes;
      return p;
    }
  }
  void* p = detail::cuda_allocate(bytes);  // outside the lock: it may throw
  std::lock_guard<std::mutex> lock(mutex_);
  ++device_allocations_;
  return p;
}

void DevicePool::release(void* ptr, std::size_t bytes) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    free_[bytes].push_back(ptr);
    cached_bytes_ += bytes;
  } catch (...) {
    detail::cuda_release(ptr, bytes);  // no host memory for the list: give the block back
  }
}

std::size_t DevicePool::device_allocations() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return device_allocations_;
}

std::size_t DevicePool::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cached_bytes_;
}

DevicePool* current_device_pool() noexcept {
  return t_pool.get();
}

std::shared_ptr<DevicePool> current_device_pool_owner() {
  return t_pool;
}

PoolScope::PoolScope(std::shared_ptr<DevicePool> pool) noexcept : previous_(std::move(t_pool)) {
  t_pool = std::move(pool);
}

PoolScope::~PoolScope() {
  t_pool = std::move(previous_);
}

}  // namespace gradaccum
