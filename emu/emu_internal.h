// Shared between the emulator's own source files; not for kernels or library code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <functional>

namespace gradaccum::emu::detail {

// The dynamic shared memory a kernel may use: 48 KiB, or what cudaFuncSetAttribute(
// cudaFuncAttributeMaxDynamicSharedMemorySize) allowed (emu/runtime.cpp).
std::size_t max_dynamic_shared_bytes(const void* kernel);

// Records `err` as the thread's last error (cudaGetLastError) and returns it (emu/runtime.cpp).
cudaError_t fail_with(cudaError_t err);

// Stream capture (emu/capture.cpp).
// Before a call that a capture forbids (allocation, free, synchronous copy or set, device
// synchronisation): cudaErrorStreamCaptureUnsupported when this thread captures (Global or
// ThreadLocal) or another thread captures in Global mode, which also invalidates those captures.
cudaError_t check_unsafe_call();
// Before work on `stream`: *record says whether it captures (record the work instead of running
// it). Errors: the legacy stream while a blocking stream captures (cudaErrorStreamCaptureImplicit,
// invalidating it); a stream whose capture was invalidated (cudaErrorStreamCaptureInvalidated).
cudaError_t admit_work(cudaStream_t stream, bool* record);
// Appends a node to the graph that `stream` records (admit_work said so).
void record_node(cudaStream_t stream, std::function<void()> run);

}  // namespace gradaccum::emu::detail
