// The CUDA device through the CUDA runtime (the emulated runtime in an emulator build).
#include <atomic>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_check.cuh"
#include "core/cuda_device.h"
#include "core/stream.h"

namespace gradaccum {
namespace {
std::atomic<std::size_t> g_bytes_in_use{0};
std::atomic<std::size_t> g_memory_limit{0};  // 0: none

// Blocks whose cudaFree a stream capture refused (a Storage destroyed during a capture, outside
// the capture's pool): freed at the next allocation or synchronisation instead of leaked.
struct DeferredFrees {
  std::mutex mutex;
  std::vector<std::pair<void*, std::size_t>> blocks;
};
DeferredFrees& deferred_frees() {
  static DeferredFrees d;
  return d;
}

void free_deferred() noexcept {
  DeferredFrees& d = deferred_frees();
  std::vector<std::pair<void*, std::size_t>> blocks;
  {
    std::lock_guard<std::mutex> lock(d.mutex);
    if (d.blocks.empty()) return;
    blocks.swap(d.blocks);
  }
  for (const auto& [ptr, bytes] : blocks)
    detail::cuda_release(ptr, bytes);  // refused again while still capturing: deferred again
}

cudaMemcpyKind to_cuda(detail::CopyKind kind) {
  switch (kind) {
    case detail::CopyKind::HostToDevice:
      return cudaMemcpyHostToDevice;
    case detail::CopyKind::DeviceToHost:
      return cudaMemcpyDeviceToHost;
    case detail::CopyKind::DeviceToDevice:
      return cudaMemcpyDeviceToDevice;
    case detail::CopyKind::HostToHost:
      break;
  }
  return cudaMemcpyHostToHost;
}
}  // namespace

bool built_with_cuda() {
  return true;
}

int cuda_device_count() {
  int n = 0;
  // No driver or no device is an error code here, not an exception: the answer is 0.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return 0;
  }
  return n;
}

bool cuda_available() {
  return cuda_device_count() > 0;
}

std::string cuda_device_name() {
  GA_CHECK(cuda_available(), "no CUDA device is available");
  cudaDeviceProp prop{};
  GA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  return prop.name;
}

void cuda_synchronize() {
  GA_CUDA_CHECK(cudaDeviceSynchronize());
  free_deferred();
}

std::size_t cuda_bytes_in_use() {
  return g_bytes_in_use.load();
}

void set_cuda_memory_limit(std::size_t bytes) {
  g_memory_limit.store(bytes);
}

std::size_t cuda_memory_limit() {
  return g_memory_limit.load();
}

namespace detail {

void* cuda_allocate(std::size_t bytes) {
  GA_CHECK(cuda_available(), "a CUDA tensor needs a CUDA device, and none is available");
  free_deferred();
  // Counted before the allocation, so that concurrent ones cannot pass the limit together.
  const std::size_t before = g_bytes_in_use.fetch_add(bytes);
  const std::size_t limit = g_memory_limit.load();
  if (limit != 0 && (before > limit || bytes > limit - before)) {
    g_bytes_in_use -= bytes;
    throw OutOfMemoryError("CUDA out of memory allocating " + std::to_string(bytes) + " bytes: " +
                               std::to_string(before) + " of the " + std::to_string(limit) +
                               " bytes set by set_cuda_memory_limit are in use",
                           bytes, __FILE__, __LINE__);
  }
  void* ptr = nullptr;
  const cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err != cudaSuccess) g_bytes_in_use -= bytes;
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    throw OutOfMemoryError("CUDA out of memory allocating " + std::to_string(bytes) + " bytes",
                           bytes, __FILE__, __LINE__);
  }
  GA_CUDA_CHECK(err);
  return ptr;
}

void cuda_release(void* ptr, std::size_t bytes) noexcept {
  // A destructor path: report nothing, throw nothing. A failing free means the context is
  // already broken, and the next checked call will say so; except during a capture, which
  // refuses cudaFree (and is invalidated by it): then the block is freed later.
  const cudaError_t err = cudaFree(ptr);
  if (err == cudaSuccess) {
    g_bytes_in_use -= bytes;
  } else if (err == cudaErrorStreamCaptureUnsupported || err == cudaErrorStreamCaptureImplicit) {
    (void)cudaGetLastError();  // the capture reports it; a later launch must not
    try {
      DeferredFrees& d = deferred_frees();
      std::lock_guard<std::mutex> lock(d.mutex);
      d.blocks.emplace_back(ptr, bytes);
    } catch (...) {
      // No host memory to remember it: the block is lost, as before.
    }
  }
}

void cuda_copy(void* dst, const void* src, std::size_t bytes, CopyKind kind) {
  // Device to device stays on the device: ordered on the current stream, and capturable.
  // Copies to or from the host return data or read host memory now: synchronous.
  if (kind == CopyKind::DeviceToDevice) {
    GA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, to_cuda(kind), current_stream()));
  } else {
    GA_CUDA_CHECK(cudaMemcpy(dst, src, bytes, to_cuda(kind)));
  }
}

void cuda_copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind) {
  GA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, to_cuda(kind), current_stream()));
}

void cuda_zero(void* ptr, std::size_t bytes) {
  GA_CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, current_stream()));
}

void* cuda_host_allocate(std::size_t bytes) {
  if (!cuda_available()) return nullptr;
  void* ptr = nullptr;
  const cudaError_t err = cudaHostAlloc(&ptr, bytes, cudaHostAllocDefault);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    throw OutOfMemoryError(
        "out of page-locked host memory allocating " + std::to_string(bytes) + " bytes", bytes,
        __FILE__, __LINE__);
  }
  GA_CUDA_CHECK(err);
  return ptr;
}

void cuda_host_release(void* ptr) noexcept {
  (void)cudaFreeHost(ptr);  // a destructor path: a failure means a broken context, reported later
}

const char* cublas_status_name(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "unknown cublasStatus_t";
}

}  // namespace detail
}  // namespace gradaccum
