// .npy files (NumPy's format, versions 1.0, 2.0 and 3.0): f32 and f16, little-endian, C order.
// The loader is an input boundary: every malformed file is an Error naming the file and problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace gradaccum {

// Loads a CPU tensor. Throws Error naming `path` on any problem with the file.
Tensor load_npy(const std::string& path);
// Parses an in-memory .npy image; `name` is used in error messages.
Tensor parse_npy(const std::uint8_t* data, std::size_t size, const std::string& name);
// Saves any tensor (copied to the host first) as version 1.0 (2.0 if the header needs it).
void save_npy(const std::string& path, const Tensor& tensor);
// The bytes save_npy would write (for formats that embed .npy images: core/state_dict.h).
std::string encode_npy(const Tensor& tensor);

}  // namespace gradaccum
