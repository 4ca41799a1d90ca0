#include "kernels/nonfinite_flag.h"

#include <cstring>

#include "core/cuda_device.h"

namespace gradaccum {

NonFiniteFlag::NonFiniteFlag(Device device) : storage_(sizeof(std::uint32_t), device) {
  clear();
}

bool NonFiniteFlag::raised() const {
  std::uint32_t value = 0;
  if (device() == Device::CPU) {
    std::memcpy(&value, storage_.data(), sizeof value);
  } else {
    detail::cuda_copy(&value, storage_.data(), sizeof value, detail::CopyKind::DeviceToHost);
  }
  return value != 0;
}

void NonFiniteFlag::set(bool raised) {
  const std::uint32_t value = raised ? 1u : 0u;
  if (device() == Device::CPU) {
    std::memcpy(storage_.data(), &value, sizeof value);
  } else {
    detail::cuda_copy(storage_.data(), &value, sizeof value, detail::CopyKind::HostToDevice);
  }
}

void NonFiniteFlag::clear() {
  if (device() == Device::CPU) {
    std::memset(storage_.data(), 0, sizeof(std::uint32_t));
  } else {
    detail::cuda_zero(storage_.data(), sizeof(std::uint32_t));
  }
}

}  // namespace gradaccum
