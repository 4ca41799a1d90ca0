// The library's CUDA device: a real GPU, or the emulated one in an emulator build. Everything
// here is safe to call in any build; without CUDA support the device simply does not exist.
#pragma once

#include <cstddef>
#include <string>

namespace gradaccum {

bool built_with_cuda();          // compiled with CUDA support (real or emulated)
int cuda_device_count();         // 0 when there is no driver or no device; never throws
bool cuda_available();           // cuda_device_count() > 0
std::string cuda_device_name();  // throws when no device
void cuda_synchronize();         // waits for all work on the device; throws on a device error

// Bytes gradaccum currently holds on the device (its own count, exact, for leak checks).
std::size_t cuda_bytes_in_use();
// A cap on cuda_bytes_in_use() (0, the default: none): an allocation that would pass it throws
// OutOfMemoryError as a full device would (PyTorch's set_per_process_memory_fraction, in bytes).
// For sharing a GPU, and for testing what running out of memory does.
void set_cuda_memory_limit(std::size_t bytes);
std::size_t cuda_memory_limit();

namespace detail {
enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice, HostToHost };
void* cuda_allocate(std::size_t bytes);  // throws OutOfMemoryError naming the bytes
void cuda_release(void* ptr, std::size_t bytes) noexcept;
// Host <-> device: synchronous. Device to device: asynchronous on the current stream
// (core/stream.h), like cuda_zero.
void cuda_copy(void* dst, const void* src, std::size_t bytes, CopyKind kind);
// Asynchronous on the current stream in every direction (a pageable host source may be reused
// once it returns: the runtime has staged it).
void cuda_copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind);
void cuda_zero(void* ptr, std::size_t bytes);
// Page-locked host memory (cudaHostAlloc) when a device is present, for fast staging copies;
// null when there is no device (the caller falls back to ordinary memory). Throws
// OutOfMemoryError naming the bytes.
void* cuda_host_allocate(std::size_t bytes);
void cuda_host_release(void* ptr) noexcept;
}  // namespace detail

}  // namespace gradaccum
