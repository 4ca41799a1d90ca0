// The emulated device's CUDA runtime: the part of the CUDA runtime API that gradaccum calls, on
// host memory, with the real declarations from cuda_runtime_api.h (nothing links libcudart in an
// emulator build). Everything is synchronous: streams and events exist but order nothing, since
// every copy and launch has finished when its call returns (or, on a capturing stream, has been
// recorded: streams, capture and graphs are in capture.cpp). cuBLAS is absent: its entry points
// answer CUBLAS_STATUS_NOT_SUPPORTED.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "emu/emu_internal.h"

// The opaque handle types of the runtime, defined here (there is no driver behind them).
struct CUevent_st {
  std::chrono::steady_clock::time_point time{};
  bool recorded = false;
};

namespace gradaccum::emu {
namespace {

constexpr std::size_t kDefaultSharedBytes = 48 * 1024;
constexpr std::size_t kOptInSharedBytes = 227 * 1024;

thread_local cudaError_t t_last_error = cudaSuccess;

cudaError_t fail(cudaError_t err) {
  t_last_error = err;
  return err;
}

struct Memory {
  std::mutex mutex;
  std::unordered_map<void*, std::size_t> allocations;
  std::size_t in_use = 0;
  std::unordered_map<const void*, std::size_t> dynamic_shared_limit;  // cudaFuncSetAttribute
};

Memory& memory() {
  static Memory m;
  return m;
}

// The emulated device's memory: the machine's RAM (or GRADACCUM_EMU_MEMORY_MB).
std::size_t total_memory() {
  static const std::size_t total = [] {
    if (const char* mb = std::getenv("GRADACCUM_EMU_MEMORY_MB"); mb != nullptr && *mb != '\0') {
      const unsigned long long v = std::strtoull(mb, nullptr, 10);
      if (v > 0) return static_cast<std::size_t>(v) << 20;
    }
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return std::size_t{16} << 30;
    return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page);
  }();
  return total;
}

bool valid_device(int device) {
  return device == 0;
}

}  // namespace

namespace detail {
cudaError_t fail_with(cudaError_t err) {
  return fail(err);
}

std::size_t max_dynamic_shared_bytes(const void* kernel) {
  Memory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto it = m.dynamic_shared_limit.find(kernel);
  return it == m.dynamic_shared_limit.end() ? kDefaultSharedBytes
                                            : std::max(it->second, kDefaultSharedBytes);
}
}  // namespace detail

}  // namespace gradaccum::emu

using gradaccum::emu::fail;
using gradaccum::emu::memory;
using gradaccum::emu::detail::admit_work;
using gradaccum::emu::detail::check_unsafe_call;

extern "C" {

// ---- errors ----

cudaError_t cudaGetLastError(void) {
  const cudaError_t err = gradaccum::emu::t_last_error;
  gradaccum::emu::t_last_error = cudaSuccess;
  return err;
}

cudaError_t cudaPeekAtLastError(void) {
  return gradaccum::emu::t_last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
#define GA_EMU_NAME(code) \
  case code:              \
    return #code;
    GA_EMU_NAME(cudaSuccess)
    GA_EMU_NAME(cudaErrorInvalidValue)
    GA_EMU_NAME(cudaErrorMemoryAllocation)
    GA_EMU_NAME(cudaErrorInitializationError)
    GA_EMU_NAME(cudaErrorInvalidConfiguration)
    GA_EMU_NAME(cudaErrorInvalidDevicePointer)
    GA_EMU_NAME(cudaErrorInvalidMemcpyDirection)
    GA_EMU_NAME(cudaErrorNoDevice)
    GA_EMU_NAME(cudaErrorInvalidDevice)
    GA_EMU_NAME(cudaErrorInvalidResourceHandle)
    GA_EMU_NAME(cudaErrorNotReady)
    GA_EMU_NAME(cudaErrorLaunchFailure)
    GA_EMU_NAME(cudaErrorIllegalAddress)
    GA_EMU_NAME(cudaErrorLaunchOutOfResources)
    GA_EMU_NAME(cudaErrorNotSupported)
    GA_EMU_NAME(cudaErrorIllegalState)
    GA_EMU_NAME(cudaErrorStreamCaptureUnsupported)
    GA_EMU_NAME(cudaErrorStreamCaptureInvalidated)
    GA_EMU_NAME(cudaErrorStreamCaptureImplicit)
    GA_EMU_NAME(cudaErrorStreamCaptureWrongThread)
    GA_EMU_NAME(cudaErrorUnknown)
#undef GA_EMU_NAME
    default:
      return "cudaErrorUnrecognized";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidDevicePointer:
      return "invalid device pointer";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorNotSupported:
      return "operation not supported (on the emulated device)";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorStreamCaptureWrongThread:
      return "attempt to terminate a thread-local capture sequence from another thread";
    case cudaErrorIllegalState:
      return "the operation is not permitted in the current state (no capture to end)";
    default:
      return "unrecognized error code";
  }
}

// ---- device ----

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return gradaccum::emu::valid_device(device) ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  const cudaError_t err = check_unsafe_call();
  return err == cudaSuccess ? cudaSuccess : fail(err);
}
cudaError_t cudaDeviceReset(void) {
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  if (version == nullptr) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (version == nullptr) return fail(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

// An H100 (sm_90) as far as limits go.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue);
  if (!gradaccum::emu::valid_device(device)) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "%s",
                "gradaccum emulated device (sm_90 limits, runs on the CPU)");
  prop->totalGlobalMem = gradaccum::emu::total_memory();
  prop->sharedMemPerBlock = gradaccum::emu::kDefaultSharedBytes;
  prop->sharedMemPerBlockOptin = gradaccum::emu::kOptInSharedBytes;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->memPitch = 2147483647;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 65536;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->maxBlocksPerMultiProcessor = 32;
  prop->l2CacheSize = 50 * 1024 * 1024;
  prop->concurrentKernels = 1;
  prop->unifiedAddressing = 1;
  prop->asyncEngineCount = 0;
  prop->memoryBusWidth = 5120;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr) return fail(cudaErrorInvalidValue);
  if (!gradaccum::emu::valid_device(device)) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      break;
    case cudaDevAttrMaxBlockDimX:
    case cudaDevAttrMaxBlockDimY:
      *value = 1024;
      break;
    case cudaDevAttrMaxBlockDimZ:
      *value = 64;
      break;
    case cudaDevAttrMaxGridDimX:
      *value = 2147483647;
      break;
    case cudaDevAttrMaxGridDimY:
    case cudaDevAttrMaxGridDimZ:
      *value = 65535;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = static_cast<int>(gradaccum::emu::kDefaultSharedBytes);
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(gradaccum::emu::kOptInSharedBytes);
      break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor:
      *value = 228 * 1024;
      break;
    case cudaDevAttrWarpSize:
      *value = 32;
      break;
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      break;
    case cudaDevAttrMaxThreadsPerMultiProcessor:
      *value = 2048;
      break;
    case cudaDevAttrMaxRegistersPerBlock:
      *value = 65536;
      break;
    case cudaDevAttrL2CacheSize:
      *value = 50 * 1024 * 1024;
      break;
    default:
      *value = 0;
      break;
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (func == nullptr) return fail(cudaErrorInvalidDeviceFunction);
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<std::size_t>(value) > gradaccum::emu::kOptInSharedBytes) {
      return fail(cudaErrorInvalidValue);
    }
    auto& m = memory();
    std::lock_guard<std::mutex> lock(m.mutex);
    m.dynamic_shared_limit[func] = static_cast<std::size_t>(value);
  }
  return cudaSuccess;  // carve-out preferences and the like mean nothing here
}

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func) {
  if (attr == nullptr || func == nullptr) return fail(cudaErrorInvalidValue);
  *attr = cudaFuncAttributes{};
  attr->maxThreadsPerBlock = 1024;
  attr->maxDynamicSharedSizeBytes =
      static_cast<int>(gradaccum::emu::detail::max_dynamic_shared_bytes(func));
  attr->ptxVersion = 90;
  attr->binaryVersion = 90;
  return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* num_blocks, const void* func,
                                                          int block_size,
                                                          size_t dynamic_smem_size) {
  if (num_blocks == nullptr || func == nullptr || block_size <= 0) {
    return fail(cudaErrorInvalidValue);
  }
  int blocks = std::min(32, 2048 / block_size);
  if (dynamic_smem_size > 0) {
    blocks = std::min(blocks, static_cast<int>((228 * 1024) / dynamic_smem_size));
  }
  *num_blocks = std::max(blocks, 0);
  return cudaSuccess;
}

cudaError_t cudaLaunchKernel(const void*, dim3, dim3, void**, size_t, cudaStream_t) {
  return fail(cudaErrorNotSupported);  // the emulator launches through GA_LAUNCH
}

// ---- memory ----

cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (const cudaError_t err = check_unsafe_call(); err != cudaSuccess) return fail(err);
  if (size == 0) return cudaSuccess;
  auto& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  const std::size_t total = gradaccum::emu::total_memory();
  if (size > total || m.in_use > total - size) return fail(cudaErrorMemoryAllocation);
  void* p = nullptr;
  // 256-byte aligned like cudaMalloc, and exactly `size` bytes (AddressSanitizer sees overruns).
  if (posix_memalign(&p, 256, size) != 0 || p == nullptr) return fail(cudaErrorMemoryAllocation);
  m.allocations.emplace(p, size);
  m.in_use += size;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaMallocManaged(void** ptr, size_t size, unsigned int) {
  return cudaMalloc(ptr, size);
}

cudaError_t cudaFree(void* ptr) {
  if (const cudaError_t err = check_unsafe_call(); err != cudaSuccess) return fail(err);
  if (ptr == nullptr) return cudaSuccess;
  auto& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto it = m.allocations.find(ptr);
  if (it == m.allocations.end()) return fail(cudaErrorInvalidValue);
  m.in_use -= it->second;
  m.allocations.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t size) {
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  *ptr = size == 0 ? nullptr : std::malloc(size);
  return (size != 0 && *ptr == nullptr) ? fail(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaHostAlloc(void** ptr, size_t size, unsigned int) {
  return cudaMallocHost(ptr, size);
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaHostRegister(void*, size_t, unsigned int) {
  return cudaSuccess;
}
cudaError_t cudaHostUnregister(void*) {
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue);
  auto& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  *total_bytes = gradaccum::emu::total_memory();
  *free_bytes = *total_bytes - std::min(m.in_use, *total_bytes);
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr) {
  if (attributes == nullptr) return fail(cudaErrorInvalidValue);
  *attributes = cudaPointerAttributes{};
  auto& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  const bool device = m.allocations.count(const_cast<void*>(ptr)) != 0;
  attributes->type = device ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
  attributes->device = 0;
  attributes->devicePointer = device ? const_cast<void*>(ptr) : nullptr;
  attributes->hostPointer = device ? nullptr : const_cast<void*>(ptr);
  return cudaSuccess;
}

namespace {
cudaError_t check_copy(void* dst, const void* src, cudaMemcpyKind kind) {
  if (dst == nullptr || src == nullptr) return fail(cudaErrorInvalidValue);
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) {
    return fail(cudaErrorInvalidMemcpyDirection);
  }
  return cudaSuccess;
}

// Work on `stream`: run now, or recorded into its capture, or refused by the capture rules.
cudaError_t stream_work(cudaStream_t stream, const std::function<void()>& work) {
  bool record = false;
  if (const cudaError_t err = admit_work(stream, &record); err != cudaSuccess) return fail(err);
  if (record) {
    gradaccum::emu::detail::record_node(stream, work);
  } else {
    work();
  }
  return cudaSuccess;
}
}  // namespace

// Synchronous: an "unsafe" call during a capture, and work on the legacy stream.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (const cudaError_t err = check_unsafe_call(); err != cudaSuccess) return fail(err);
  if (count == 0) return cudaSuccess;
  if (const cudaError_t err = check_copy(dst, src, kind); err != cudaSuccess) return err;
  return stream_work(nullptr, [=] { std::memmove(dst, src, count); });
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (const cudaError_t err = check_copy(dst, src, kind); err != cudaSuccess) return err;
  return stream_work(stream, [=] { std::memmove(dst, src, count); });
}

cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                         size_t height, cudaMemcpyKind kind) {
  if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);
  for (size_t row = 0; row < height; ++row) {
    const cudaError_t err = cudaMemcpy(static_cast<char*>(dst) + row * dpitch,
                                       static_cast<const char*>(src) + row * spitch, width, kind);
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch,
                              size_t width, size_t height, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (const cudaError_t err = check_unsafe_call(); err != cudaSuccess) return fail(err);
  if (count == 0) return cudaSuccess;
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  return stream_work(nullptr, [=] { std::memset(ptr, value, count); });
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (ptr == nullptr) return fail(cudaErrorInvalidValue);
  return stream_work(stream, [=] { std::memset(ptr, value, count); });
}

// A __device__ / __constant__ variable is an ordinary host variable here: the symbol's address.
cudaError_t cudaMemcpyToSymbol(const void* symbol, const void* src, size_t count, size_t offset,
                               cudaMemcpyKind kind) {
  if (symbol == nullptr) return fail(cudaErrorInvalidSymbol);
  return cudaMemcpy(const_cast<char*>(static_cast<const char*>(symbol)) + offset, src, count, kind);
}

cudaError_t cudaMemcpyFromSymbol(void* dst, const void* symbol, size_t count, size_t offset,
                                 cudaMemcpyKind kind) {
  if (symbol == nullptr) return fail(cudaErrorInvalidSymbol);
  return cudaMemcpy(dst, static_cast<const char*>(symbol) + offset, count, kind);
}

cudaError_t cudaMemcpyToSymbolAsync(const void* symbol, const void* src, size_t count,
                                    size_t offset, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpyToSymbol(symbol, src, count, offset, kind);
}

cudaError_t cudaMemcpyFromSymbolAsync(void* dst, const void* symbol, size_t count, size_t offset,
                                      cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpyFromSymbol(dst, symbol, count, offset, kind);
}

cudaError_t cudaGetSymbolAddress(void** address, const void* symbol) {
  if (address == nullptr || symbol == nullptr) return fail(cudaErrorInvalidSymbol);
  *address = const_cast<void*>(symbol);
  return cudaSuccess;
}

cudaError_t cudaFuncSetCacheConfig(const void* func, cudaFuncCache) {
  return func == nullptr ? fail(cudaErrorInvalidDeviceFunction) : cudaSuccess;
}

// ---- events (streams, capture and graphs: capture.cpp) ----

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (event == nullptr) return fail(cudaErrorInvalidValue);
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) {
  return cudaEventCreate(event);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

// On a capturing stream an event only marks a point in the capture: nothing to time.
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  bool record = false;
  if (const cudaError_t err = admit_work(stream, &record); err != cudaSuccess) return fail(err);
  if (record) return cudaSuccess;
  event->time = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event == nullptr ? fail(cudaErrorInvalidResourceHandle) : cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  return event == nullptr ? fail(cudaErrorInvalidResourceHandle) : cudaSuccess;
}

// Host time between the two records: the emulator's own speed, nothing about a GPU's.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return fail(cudaErrorInvalidValue);
  if (start == nullptr || end == nullptr) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->time - start->time).count();
  return cudaSuccess;
}

// ---- cuBLAS: not on the emulated device ----

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle != nullptr) *handle = nullptr;
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t, cudaStream_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasGetStream_v2(cublasHandle_t, cudaStream_t*) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t, cublasMath_t*) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t, cublasPointerMode_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void*, size_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasGetVersion_v2(cublasHandle_t, int*) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                            const void*, const void*, cudaDataType, int, const void*, cudaDataType,
                            int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                            cublasGemmAlgo_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                          int, int, const void*, const void*, cudaDataType, int,
                                          long long int, const void*, cudaDataType, int,
                                          long long int, const void*, void*, cudaDataType, int,
                                          long long int, int, cublasComputeType_t,
                                          cublasGemmAlgo_t) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSgemm_v2(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                              const float*, const float*, int, const float*, int, const float*,
                              float*, int) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                         int, int, const float*, const float*, int, long long int,
                                         const float*, int, long long int, const float*, float*,
                                         int, long long int, int) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasHgemm(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                           const __half*, const __half*, int, const __half*, int, const __half*,
                           __half*, int) {
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
const char* cublasGetStatusName(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS         ? "CUBLAS_STATUS_SUCCESS"
         : status == CUBLAS_STATUS_NOT_SUPPORTED ? "CUBLAS_STATUS_NOT_SUPPORTED"
                                                 : "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_NOT_SUPPORTED ? "cuBLAS is not supported on the emulated device"
                                               : cublasGetStatusName(status);
}

}  // extern "C"
