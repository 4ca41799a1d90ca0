// Shared between the emulator's own source files; not for kernels or library code.
#pragma once

#include <cstddef>

namespace gradaccum::emu::detail {

// The dynamic shared memory a kernel may use: 48 KiB, or what cudaFuncSetAttribute(
// cudaFuncAttributeMaxDynamicSharedMemorySize) allowed (emu/runtime.cpp).
std::size_t max_dynamic_shared_bytes(const void* kernel);

}  // namespace gradaccum::emu::detail
