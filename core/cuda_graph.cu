// Streams and graphs through the CUDA runtime (the emulated runtime in an emulator build).
#include "core/cuda_check.cuh"
#include "core/cuda_graph.h"

namespace gradaccum::detail {

Stream cuda_stream_create() {
  cudaStream_t s = nullptr;
  GA_CUDA_CHECK(cudaStreamCreate(&s));
  return s;
}

void cuda_stream_destroy(Stream stream) noexcept {
  if (stream != nullptr) (void)cudaStreamDestroy(stream);
}

void cuda_stream_synchronize(Stream stream) {
  GA_CUDA_CHECK(cudaStreamSynchronize(stream));
}

void cuda_begin_capture(Stream stream) {
  GA_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
}

Graph cuda_end_capture(Stream stream) {
  cudaGraph_t graph = nullptr;
  const cudaError_t err = cudaStreamEndCapture(stream, &graph);
  if (err != cudaSuccess && graph != nullptr) (void)cudaGraphDestroy(graph);
  GA_CUDA_CHECK(err);
  return graph;
}

void cuda_abandon_capture(Stream stream) noexcept {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &status) != cudaSuccess ||
      status == cudaStreamCaptureStatusNone) {
    return;
  }
  cudaGraph_t graph = nullptr;
  (void)cudaStreamEndCapture(stream, &graph);
  if (graph != nullptr) (void)cudaGraphDestroy(graph);
}

std::size_t cuda_graph_node_count(Graph graph) {
  std::size_t n = 0;
  GA_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &n));
  return n;
}

GraphExec cuda_graph_instantiate(Graph graph) {
  cudaGraphExec_t exec = nullptr;
  GA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  return exec;
}

void cuda_graph_launch(GraphExec exec, Stream stream) {
  GA_CUDA_CHECK(cudaGraphLaunch(exec, stream));
}

void cuda_graph_destroy(Graph graph) noexcept {
  if (graph != nullptr) (void)cudaGraphDestroy(graph);
}

void cuda_graph_exec_destroy(GraphExec exec) noexcept {
  if (exec != nullptr) (void)cudaGraphExecDestroy(exec);
}

void cuda_clear_last_error() noexcept {
  (void)cudaGetLastError();
}

}  // namespace gradaccum::detail
