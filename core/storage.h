// Owning, move-only memory on one device. Copies are explicit (see Tensor::to / clone).
// Device memory comes from the thread's current DevicePool when one is active (core/device_pool.h)
// and goes back to that pool when freed.
#pragma once

#include <cstddef>
#include <memory>

#include "core/dtype.h"

namespace gradaccum {

class DevicePool;

class Storage {
 public:
  Storage() = default;
  Storage(std::size_t bytes, Device device);  // throws OutOfMemoryError on failure
  ~Storage();                                 // never throws
  // Memory that someone else owns and keeps alive, in place, for as long as this storage (and
  // anything moved from it) lives: never freed here.
  static Storage borrow(void* ptr, std::size_t bytes, Device device);
  bool borrowed() const { return borrowed_; }

  Storage(Storage&& other) noexcept;
  Storage& operator=(Storage&& other) noexcept;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() { return ptr_; }
  const void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void release() noexcept;

  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_ = Device::CPU;
  std::shared_ptr<DevicePool> pool_;  // the pool the block came from (null: cudaMalloc)
  bool borrowed_ = false;
};

}  // namespace gradaccum
