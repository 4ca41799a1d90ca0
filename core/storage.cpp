#include "core/storage.h"

#include <utility>

#include "core/cuda_device.h"
#include "core/device_pool.h"
#include "core/error.h"
#include "core/host_block_cache.h"

namespace gradaccum {

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  if (device == Device::CPU) {
    ptr_ = host_cache::allocate(bytes);
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

Storage Storage::borrow(void* ptr, std::size_t bytes, Device device) {
  GA_CHECK(ptr != nullptr || bytes == 0, "Storage::borrow: null memory for " << bytes << " bytes");
  Storage s;
  s.ptr_ = ptr;
  s.bytes_ = bytes;
  s.device_ = device;
  s.borrowed_ = true;
  return s;
}

Storage::Storage(Storage&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      device_(other.device_),
      pool_(std::move(other.pool_)),
      borrowed_(std::exchange(other.borrowed_, false)) {}

Storage& Storage::operator=(Storage&& other) noexcept {
  if (this != &other) {
    release();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    device_ = other.device_;
    pool_ = std::move(other.pool_);
    borrowed_ = std::exchange(other.borrowed_, false);
  }
  return *this;
}

void Storage::release() noexcept {
  if (ptr_ == nullptr) return;
  if (borrowed_) {
    borrowed_ = false;
  } else if (device_ == Device::CPU) {
    host_cache::release(ptr_, bytes_);
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
