#include "core/host_buffer.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "core/cuda_device.h"
#include "core/error.h"

namespace gradaccum {

HostBuffer::HostBuffer(std::size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  ptr_ = detail::cuda_host_allocate(bytes);
  pinned_ = ptr_ != nullptr;
  if (ptr_ == nullptr) {
    constexpr std::size_t kAlign = 64;
    ptr_ = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    if (ptr_ == nullptr) {
      throw OutOfMemoryError("out of host memory allocating " + std::to_string(bytes) + " bytes",
                             bytes, __FILE__, __LINE__);
    }
  }
  std::memset(ptr_, 0, bytes);
}

HostBuffer::~HostBuffer() {
  release();
}

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      pinned_(std::exchange(other.pinned_, false)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    release();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    pinned_ = std::exchange(other.pinned_, false);
  }
  return *this;
}

void HostBuffer::release() noexcept {
  if (ptr_ == nullptr) return;
  if (pinned_) {
    detail::cuda_host_release(ptr_);
  } else {
    std::free(ptr_);
  }
  ptr_ = nullptr;
}

}  // namespace gradaccum
