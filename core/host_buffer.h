// Host memory for staging copies to and from the device: page-locked (cudaHostAlloc) when a CUDA
// device is present, so that the copies run at full speed and can be asynchronous; ordinary
// memory otherwise. Zeroed, 64-byte aligned, move-only; the destructor never throws.
#pragma once

#include <cstddef>

namespace gradaccum {

class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(std::size_t bytes);  // throws OutOfMemoryError naming the bytes
  ~HostBuffer();

  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  void* data() { return ptr_; }
  const void* data() const { return ptr_; }
  std::size_t bytes() const { return bytes_; }
  bool pinned() const { return pinned_; }

 private:
  void release() noexcept;

  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
  bool pinned_ = false;
};

}  // namespace gradaccum
