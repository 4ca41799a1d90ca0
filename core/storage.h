// Owning, move-only memory on one device. Copies are explicit (see Tensor::to / clone).
#pragma once

#include <cstddef>

#include "core/dtype.h"

namespace gradaccum {

class Storage {
 public:
  Storage() = default;
  Storage(std::size_t bytes, Device device);  // throws OutOfMemoryError on failure
  ~Storage();                                 // never throws

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
};

}  // namespace gradaccum
