// The emulated device's streams, stream capture and graphs. Work is synchronous, so a stream
// orders nothing; what a stream does carry is its capture state, with the rules of the CUDA
// runtime that a real GPU enforces (so CI rejects what an H100 would):
//   - the legacy stream 0 cannot capture (cudaErrorStreamCaptureUnsupported);
//   - work put on a capturing stream is recorded into its graph, not run; cudaGraphLaunch
//     replays the recorded nodes in order (synchronously, like every emulated launch);
//   - "unsafe" calls (cudaMalloc, cudaFree, synchronous cudaMemcpy / cudaMemset,
//     cudaDeviceSynchronize, cudaStreamSynchronize of a capturing stream) while this thread
//     captures in Global or ThreadLocal mode, or another thread captures in Global mode, fail with
//     cudaErrorStreamCaptureUnsupported and invalidate those captures;
//   - work on the legacy stream while a blocking stream captures would make the legacy stream
//     wait on the capture: cudaErrorStreamCaptureImplicit, and the capture is invalidated;
//   - cudaStreamEndCapture of an invalidated capture gives no graph and
//     cudaErrorStreamCaptureInvalidated.
#include "emu/cuda_emu.h"  // first: it refuses to follow a CUDA header

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "emu/emu_internal.h"
#include "emu/launch_emulated.h"

struct CUstream_st {
  bool non_blocking = false;
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  CUgraph_st* graph = nullptr;  // the graph being recorded
};

struct CUgraphNode_st {
  std::function<void()> run;
};

struct CUgraph_st {
  std::vector<std::unique_ptr<CUgraphNode_st>> nodes;
};

struct CUgraphExec_st {
  std::vector<std::function<void()>> nodes;
};

namespace gradaccum::emu {
namespace {

struct Captures {
  std::mutex mutex;
  std::vector<CUstream_st*> streams;  // streams with a capture sequence (active or invalidated)
};

Captures& captures() {
  static Captures c;
  return c;
}

// Streams in `captures().streams`: a launch with none skips the lock.
std::atomic<int> g_capturing{0};

bool is_legacy(cudaStream_t s) {
  return s == nullptr || s == cudaStreamLegacy;
}

// The per-thread default stream: never captures here, and does not wait on blocking streams.
bool is_per_thread(cudaStream_t s) {
  return s == cudaStreamPerThread;
}

void drop_capture(Captures& c, CUstream_st* s) {
  for (auto it = c.streams.begin(); it != c.streams.end(); ++it) {
    if (*it == s) {
      c.streams.erase(it);
      --g_capturing;
      break;
    }
  }
  s->status = cudaStreamCaptureStatusNone;
}

}  // namespace

namespace detail {

cudaError_t check_unsafe_call() {
  if (g_capturing.load() == 0) return cudaSuccess;
  Captures& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  const std::thread::id me = std::this_thread::get_id();
  bool prohibited = false;
  for (CUstream_st* s : c.streams) {
    if (s->status != cudaStreamCaptureStatusActive) continue;
    const bool mine = s->thread == me && s->mode != cudaStreamCaptureModeRelaxed;
    const bool global = s->thread != me && s->mode == cudaStreamCaptureModeGlobal;
    if (mine || global) {
      s->status = cudaStreamCaptureStatusInvalidated;
      prohibited = true;
    }
  }
  return prohibited ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

cudaError_t admit_work(cudaStream_t stream, bool* record) {
  *record = false;
  if (g_capturing.load() == 0 || is_per_thread(stream)) return cudaSuccess;
  Captures& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (is_legacy(stream)) {
    bool implicit = false;
    for (CUstream_st* s : c.streams) {
      if (s->status == cudaStreamCaptureStatusActive && !s->non_blocking) {
        s->status = cudaStreamCaptureStatusInvalidated;
        implicit = true;
      }
    }
    return implicit ? cudaErrorStreamCaptureImplicit : cudaSuccess;
  }
  if (stream->status == cudaStreamCaptureStatusInvalidated) {
    return cudaErrorStreamCaptureInvalidated;
  }
  *record = stream->status == cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

void record_node(cudaStream_t stream, std::function<void()> run) {
  Captures& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto node = std::make_unique<CUgraphNode_st>();
  node->run = std::move(run);
  stream->graph->nodes.push_back(std::move(node));
}

void submit_launch(const KernelLaunch& launch, dim3 grid, dim3 block, std::size_t shared_bytes,
                   cudaStream_t stream) {
  bool record = false;
  const cudaError_t err = admit_work(stream, &record);
  if (err != cudaSuccess) {
    (void)fail_with(err);
    ::gradaccum::detail::throw_error(launch.file, launch.line, launch.name,
                                     std::string("kernel launch failed: ") + cudaGetErrorName(err) +
                                         " (" + cudaGetErrorString(err) + ")");
  }
  if (!record) {
    run_launch(launch, grid, block, shared_bytes, stream);
    return;
  }
  // The graph outlives the caller's stack closure: it keeps its own copy of the arguments.
  std::shared_ptr<void> closure = launch.clone(launch.closure);
  KernelLaunch owned = launch;
  owned.closure = closure.get();
  record_node(stream, [owned, closure, grid, block, shared_bytes] {
    run_launch(owned, grid, block, shared_bytes, nullptr);
  });
}

}  // namespace detail
}  // namespace gradaccum::emu

using gradaccum::emu::captures;
using gradaccum::emu::drop_capture;
using gradaccum::emu::g_capturing;
using gradaccum::emu::detail::admit_work;
using gradaccum::emu::detail::check_unsafe_call;
using gradaccum::emu::detail::fail_with;

extern "C" {

// ---- streams ----

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) return fail_with(cudaErrorInvalidValue);
  *stream = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (stream == nullptr) return fail_with(cudaErrorInvalidValue);
  *stream = new CUstream_st;
  (*stream)->non_blocking = (flags & cudaStreamNonBlocking) != 0;
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithPriority(cudaStream_t* stream, unsigned int flags, int) {
  return cudaStreamCreateWithFlags(stream, flags);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr || gradaccum::emu::is_legacy(stream) ||
      gradaccum::emu::is_per_thread(stream)) {
    return fail_with(cudaErrorInvalidResourceHandle);
  }
  {
    auto& c = captures();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (stream->status != cudaStreamCaptureStatusNone) {
      drop_capture(c, stream);
      delete stream->graph;
    }
  }
  delete stream;
  return cudaSuccess;
}

// A capturing stream cannot be waited for (its work has not been launched, only recorded).
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (gradaccum::emu::is_legacy(stream)) {
    const cudaError_t err = check_unsafe_call();
    if (err != cudaSuccess) return fail_with(err);
    bool record = false;
    const cudaError_t implicit = admit_work(stream, &record);
    return implicit == cudaSuccess ? cudaSuccess : fail_with(implicit);
  }
  if (gradaccum::emu::is_per_thread(stream)) return cudaSuccess;
  auto& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (stream->status != cudaStreamCaptureStatusNone) {
    stream->status = cudaStreamCaptureStatusInvalidated;
    return fail_with(cudaErrorStreamCaptureUnsupported);
  }
  return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
  return cudaStreamSynchronize(stream);  // everything has finished, or capture rules apply
}

cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned int) {
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (gradaccum::emu::is_legacy(stream) || gradaccum::emu::is_per_thread(stream)) {
    return fail_with(cudaErrorStreamCaptureUnsupported);
  }
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed) {
    return fail_with(cudaErrorInvalidValue);
  }
  auto& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (stream->status != cudaStreamCaptureStatusNone) return fail_with(cudaErrorIllegalState);
  stream->status = cudaStreamCaptureStatusActive;
  stream->mode = mode;
  stream->thread = std::this_thread::get_id();
  stream->graph = new CUgraph_st;
  c.streams.push_back(stream);
  ++g_capturing;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (graph == nullptr) return fail_with(cudaErrorInvalidValue);
  *graph = nullptr;
  if (gradaccum::emu::is_legacy(stream) || gradaccum::emu::is_per_thread(stream)) {
    return fail_with(cudaErrorIllegalState);
  }
  auto& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (stream->status == cudaStreamCaptureStatusNone) return fail_with(cudaErrorIllegalState);
  if (stream->mode != cudaStreamCaptureModeRelaxed &&
      stream->thread != std::this_thread::get_id()) {
    return fail_with(cudaErrorStreamCaptureWrongThread);
  }
  const bool invalidated = stream->status == cudaStreamCaptureStatusInvalidated;
  drop_capture(c, stream);
  CUgraph_st* g = std::exchange(stream->graph, nullptr);
  if (invalidated) {
    delete g;
    return fail_with(cudaErrorStreamCaptureInvalidated);
  }
  *graph = g;
  return cudaSuccess;
}

// The legacy stream cannot be asked while a blocking stream captures: it would wait on it.
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (status == nullptr) return fail_with(cudaErrorInvalidValue);
  *status = cudaStreamCaptureStatusNone;
  if (gradaccum::emu::is_per_thread(stream)) return cudaSuccess;
  auto& c = captures();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (gradaccum::emu::is_legacy(stream)) {
    for (CUstream_st* s : c.streams) {
      if (s->status == cudaStreamCaptureStatusActive && !s->non_blocking) {
        return fail_with(cudaErrorStreamCaptureImplicit);
      }
    }
    return cudaSuccess;
  }
  *status = stream->status;
  return cudaSuccess;
}

// ---- graphs ----

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* num_nodes) {
  if (graph == nullptr || num_nodes == nullptr) return fail_with(cudaErrorInvalidValue);
  const std::size_t n = graph->nodes.size();
  if (nodes != nullptr) {
    for (std::size_t i = 0; i < *num_nodes; ++i)
      nodes[i] = i < n ? graph->nodes[i].get() : nullptr;
  }
  *num_nodes = nodes == nullptr ? n : std::min(*num_nodes, n);
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (exec == nullptr) return fail_with(cudaErrorInvalidValue);
  *exec = nullptr;
  if (graph == nullptr) return fail_with(cudaErrorInvalidValue);
  auto e = std::make_unique<CUgraphExec_st>();
  e->nodes.reserve(graph->nodes.size());
  for (const auto& node : graph->nodes)
    e->nodes.push_back(node->run);
  *exec = e.release();
  return cudaSuccess;
}

// Runs the nodes in recorded order before returning. A kernel fault throws gradaccum::Error like
// a direct launch would.
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return fail_with(cudaErrorInvalidValue);
  bool record = false;
  const cudaError_t err = admit_work(stream, &record);
  if (err != cudaSuccess) return fail_with(err);
  if (record) {
    // A graph launched into a capture: the nodes become the capture's (a child graph on CUDA).
    auto nodes = std::make_shared<std::vector<std::function<void()>>>(exec->nodes);
    gradaccum::emu::detail::record_node(stream, [nodes] {
      for (const auto& run : *nodes)
        run();
    });
    return cudaSuccess;
  }
  for (const auto& run : exec->nodes)
    run();
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  if (exec == nullptr) return fail_with(cudaErrorInvalidValue);
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (graph == nullptr) return fail_with(cudaErrorInvalidValue);
  delete graph;
  return cudaSuccess;
}

}  // extern "C"
