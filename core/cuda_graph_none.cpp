// Streams and graphs in a build without CUDA support: there is no device to capture on.
#include "core/cuda_graph.h"
#include "core/error.h"

namespace gradaccum::detail {
namespace {
[[noreturn]] void no_cuda() {
  GA_FAIL("CUDA streams and graphs need CUDA support, and gradaccum was built without it");
}
}  // namespace

Stream cuda_stream_create() {
  no_cuda();
}
void cuda_stream_destroy(Stream) noexcept {}
void cuda_stream_synchronize(Stream) {
  no_cuda();
}
void cuda_begin_capture(Stream) {
  no_cuda();
}
Graph cuda_end_capture(Stream) {
  no_cuda();
}
void cuda_abandon_capture(Stream) noexcept {}
std::size_t cuda_graph_node_count(Graph) {
  no_cuda();
}
GraphExec cuda_graph_instantiate(Graph) {
  no_cuda();
}
void cuda_graph_launch(GraphExec, Stream) {
  no_cuda();
}
void cuda_graph_destroy(Graph) noexcept {}
void cuda_graph_exec_destroy(GraphExec) noexcept {}
void cuda_clear_last_error() noexcept {}

}  // namespace gradaccum::detail
