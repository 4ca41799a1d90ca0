// Element types and devices a tensor can have.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace gradaccum {

enum class DType : std::uint8_t { f32, f16 };

constexpr std::size_t dtype_size(DType t) {
  return t == DType::f32 ? 4 : 2;
}
inline const char* dtype_name(DType t) {
  return t == DType::f32 ? "f32" : "f16";
}

enum class Device : std::uint8_t { CPU, CUDA };

inline const char* device_name(Device d) {
  return d == Device::CPU ? "cpu" : "cuda";
}

}  // namespace gradaccum
