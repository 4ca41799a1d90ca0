// Launching a kernel on the emulated device (used by core/launch.cuh when the compiler is not
// nvcc). The launch runs synchronously: when it returns, every block has run, and a kernel error
// (deadlock, divergent barrier, bad warp collective, __trap) has been thrown as gradaccum::Error
// naming the kernel.
#pragma once

#include "emu/cuda_emu.h"

#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

namespace gradaccum::emu {
namespace detail {

struct KernelLaunch {
  const char* name;  // the kernel as written at the launch
  const char* file;  // the launch site
  int line;
  const void* kernel;                   // the kernel's address (cudaFuncSetAttribute's key)
  void (*invoke)(const void* closure);  // runs the kernel body for the current thread
  const void* closure;
  // A heap copy of the closure, for a graph that records the launch and outlives the caller.
  std::shared_ptr<void> (*clone)(const void* closure);
};

// Runs the grid now (emu/scheduler.cpp).
void run_launch(const KernelLaunch& launch, dim3 grid, dim3 block, std::size_t shared_bytes,
                cudaStream_t stream);
// Runs it now, or records it when `stream` captures; throws when the stream's capture state
// forbids the launch (emu/capture.cpp).
void submit_launch(const KernelLaunch& launch, dim3 grid, dim3 block, std::size_t shared_bytes,
                   cudaStream_t stream);

template <typename F>
void invoke_closure(const void* closure) {
  (*static_cast<const F*>(closure))();
}

template <typename F>
std::shared_ptr<void> clone_closure(const void* closure) {
  return std::make_shared<std::remove_const_t<F>>(*static_cast<const F*>(closure));
}

}  // namespace detail

// Geometry was checked against sm_90's limits by the caller (core/launch.cuh).
template <typename... Params, typename... Args>
void launch(const char* name, const char* file, int line, void (*kernel)(Params...), dim3 grid,
            dim3 block, std::size_t shared_bytes, cudaStream_t stream, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count mismatch");
  // The arguments, copied once; every thread gets its own copy of the parameters, as on a GPU.
  const auto closure = [kernel, arguments = std::tuple<std::decay_t<Params>...>(std::forward<Args>(
                                    args)...)]() { std::apply(kernel, arguments); };
  const detail::KernelLaunch launch_info{name,
                                         file,
                                         line,
                                         reinterpret_cast<const void*>(kernel),
                                         &detail::invoke_closure<decltype(closure)>,
                                         &closure,
                                         &detail::clone_closure<decltype(closure)>};
  detail::submit_launch(launch_info, grid, block, shared_bytes, stream);
}

}  // namespace gradaccum::emu
