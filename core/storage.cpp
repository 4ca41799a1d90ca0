#include "core/storage.h"

#include <limits>
#include <new>
#include <string>
#include <utility>

#include "core/cuda_device.h"
#include "core/device_pool.h"
#include "core/error.h"

namespace gradaccum {
namespace {
constexpr std::align_val_t kHostAlignment{64};  // a cache line, and enough for AVX-512 loads
}

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  if (device == Device::CPU) {
    // Aligned operator new rounds the size up to the alignment: sizes within the alignment of
    // SIZE_MAX would wrap to a tiny block (libstdc++), so they fail here as they would anyway.
    constexpr std::size_t kMaxBytes =
        std::numeric_limits<std::size_t>::max() - static_cast<std::size_t>(kHostAlignment);
    if (bytes > kMaxBytes) {
      throw OutOfMemoryError("out of host memory allocating " + std::to_string(bytes) + " bytes",
                             bytes, __FILE__, __LINE__);
    }
    try {
      ptr_ = ::operator new(bytes, kHostAlignment);
    } catch (const std::bad_alloc&) {
      throw OutOfMemoryError("out of host memory allocating " + std::to_string(bytes) + " bytes",
                             bytes, __FILE__, __LINE__);
    }
  } else if (DevicePool* pool = current_device_pool()) {
    ptr_ = pool->allocate(bytes);
    pool_ = current_device_pool_owner();
  } else {
    ptr_ = detail::cuda_allocate(bytes);
  }
}

Storage::~Storage() {
  release();
}

Storage::Storage(Storage&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      device_(other.device_),
      pool_(std::move(other.pool_)) {}

Storage& Storage::operator=(Storage&& other) noexcept {
  if (this != &other) {
    release();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    device_ = other.device_;
    pool_ = std::move(other.pool_);
  }
  return *this;
}

void Storage::release() noexcept {
  if (ptr_ == nullptr) return;
  if (device_ == Device::CPU) {
    ::operator delete(ptr_, kHostAlignment);
  } else if (pool_) {
    pool_->release(ptr_, bytes_);
    pool_.reset();  // the last block of a pool whose owner is gone frees the pool here
  } else {
    detail::cuda_release(ptr_, bytes_);
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace gradaccum
