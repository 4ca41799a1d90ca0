// The one way the library launches a kernel:
//   GA_LAUNCH(kernel, grid, block, shared_bytes, stream, args...);
// (the library's launches pass ::gradaccum::current_stream(), core/stream.h).
// It checks the geometry against sm_90's limits (so a launch that would fail on an H100 fails
// everywhere, with the kernel's name), launches with <<<>>> under nvcc or on the emulated device
// otherwise, and checks the launch. Kernel code stays ordinary CUDA C++.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "core/cuda_check.cuh"
#include "core/stream.h"

#if !defined(__CUDACC__)
#include "emu/launch_emulated.h"
#endif

// Dynamic shared memory: GA_DYNAMIC_SHARED(float, smem); declares `float* smem`-like storage.
#ifndef GA_DYNAMIC_SHARED
#define GA_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

#define GA_LAUNCH(kernel, grid, block, shared_bytes, stream, ...)                      \
  ::gradaccum::detail::launch_kernel(#kernel, __FILE__, __LINE__, kernel, grid, block, \
                                     shared_bytes, stream, __VA_ARGS__)

namespace gradaccum::detail {

// sm_90 limits (H100): a launch outside them fails on the GPU, so it fails here too.
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr std::size_t kMaxSharedBytesPerBlock = 227 * 1024;
constexpr unsigned kMaxGridX = 2147483647u;
constexpr unsigned kMaxGridYZ = 65535u;
constexpr unsigned kMaxBlockZ = 64;

void check_launch_geometry(const char* name, const char* file, int line, dim3 grid, dim3 block,
                           std::size_t shared_bytes);

template <typename... Params, typename... Args>
void launch_kernel(const char* name, const char* file, int line, void (*kernel)(Params...),
                   dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t stream,
                   Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count mismatch");
  check_launch_geometry(name, file, line, grid, block, shared_bytes);
#if defined(__CUDACC__)
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<Params>(std::forward<Args>(args))...);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw_error(file, line, name,
                std::string("kernel launch failed: ") + cudaGetErrorName(err) + " (" +
                    cudaGetErrorString(err) + ")");
  }
#else
  ::gradaccum::emu::launch(name, file, line, kernel, grid, block, shared_bytes, stream,
                           static_cast<Params>(std::forward<Args>(args))...);
#endif
}

}  // namespace gradaccum::detail
