// The CUDA stream and graph calls that optim::MicroStepGraph needs: a stream of its own (capture
// is impossible on the legacy stream), stream capture, instantiation and replay. Safe to include
// in any build; without CUDA support every call throws (or, for the releasing ones, does nothing).
#pragma once

#include <cstddef>

#include "core/stream.h"

struct CUgraph_st;
struct CUgraphExec_st;

namespace gradaccum::detail {

using Graph = CUgraph_st*;          // cudaGraph_t
using GraphExec = CUgraphExec_st*;  // cudaGraphExec_t

// A blocking stream (cudaStreamCreate's default flags): ordered with the legacy stream, so work
// issued there before and after stays in order with it.
Stream cuda_stream_create();
void cuda_stream_destroy(Stream stream) noexcept;
void cuda_stream_synchronize(Stream stream);

// Capture in cudaStreamCaptureModeGlobal: unsafe calls from any thread fail during it.
void cuda_begin_capture(Stream stream);
// The captured graph; throws when the capture was invalidated (the error names why).
Graph cuda_end_capture(Stream stream);
// Ends a capture that is being abandoned (after an exception) and drops what it recorded.
void cuda_abandon_capture(Stream stream) noexcept;
std::size_t cuda_graph_node_count(Graph graph);
GraphExec cuda_graph_instantiate(Graph graph);
void cuda_graph_launch(GraphExec exec, Stream stream);
void cuda_graph_destroy(Graph graph) noexcept;
void cuda_graph_exec_destroy(GraphExec exec) noexcept;

// Clears the thread's last CUDA error, which a failed capture leaves behind (a later
// cudaGetLastError after a kernel launch would report it as that launch's failure).
void cuda_clear_last_error() noexcept;

}  // namespace gradaccum::detail
