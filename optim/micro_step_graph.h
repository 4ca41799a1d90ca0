// One training micro-step (forward, loss, window.backward) captured once as a CUDA graph and then
// replayed, instead of launched op by op: for small micro-batches the launch overhead of the
// dozen or so kernels dominates, and a graph launch costs about one.
//
//   optim::MicroStepGraph graph(window,
//       [&](const autograd::Variable& x, const autograd::Variable& y) {
//         return loss_fn(model(x), y);
//       },
//       {60, 32}, {60, 8}, DType::f32);
//   window.zero_grad();
//   for (each micro-batch of 60 rows) graph.run(x_mb, y_mb);   // window.backward inside
//   opt.step(window);
//
// What makes one graph valid for every replay: every device pointer it holds stays put (the
// parameters, their gradient / compensation / scratch buffers, the window's scalars, the graph's
// static inputs, which run() copies x and y into, and its temporaries from a private pool), and
// everything that changes between replays is read from device memory: the loss scale and the
// true-count gradient scale, so one graph serves any number of micro-batches per window and any
// loss scale. The samples and loss elements the window counts are fixed by the shape, which is
// why a graph is made per micro-batch shape (an uneven last micro-batch needs its own).
//
// The first run() is a warm-up op by op (it is that micro-batch's real work, and fills the pool
// with every temporary), then the capture (which runs nothing). If the capture fails for any
// reason, the graph records why (fallback_reason()) and runs op by op from then on: slower, never
// wrong. On the CPU it always runs op by op. Do not move the model (to(device), to(dtype)) or
// rebuild the window's buffers while a MicroStepGraph of it exists.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "autograd/variable.h"
#include "core/cuda_graph.h"
#include "core/tensor.h"
#include "optim/accumulation_window.h"

namespace gradaccum {
class DevicePool;
}

namespace gradaccum::optim {

class MicroStepGraph {
 public:
  // The forward pass and loss of one micro-batch (the graph calls window.backward itself). x and
  // y are the graph's inputs, which run() fills: Variables that need no gradient.
  using StepFn =
      std::function<autograd::Variable(const autograd::Variable& x, const autograd::Variable& y)>;

  // x_shape / y_shape / dtype: the micro-batch this graph serves. The window's device decides
  // CUDA (graph) or CPU (op by op).
  MicroStepGraph(AccumulationWindow& window, StepFn step, const Shape& x_shape,
                 const Shape& y_shape, DType dtype);
  ~MicroStepGraph();  // never throws
  MicroStepGraph(const MicroStepGraph&) = delete;
  MicroStepGraph& operator=(const MicroStepGraph&) = delete;

  // One micro-batch into the window. x and y: the shapes and dtype given at construction, on the
  // CPU or the window's device (copied into the graph's inputs, so they may go away after).
  void run(const Tensor& x, const Tensor& y);

  bool captured() const { return exec_ != nullptr; }
  // Why the graph is not used ("" while it is, or before the first run()).
  const std::string& fallback_reason() const { return fallback_reason_; }
  // Nodes (kernels, copies, sets) of the captured micro-step; 0 when not captured.
  std::size_t kernels_per_micro_step() const { return nodes_; }
  const Shape& x_shape() const { return x_shape_; }
  const Shape& y_shape() const { return y_shape_; }

 private:
  enum class Mode { FirstRun, Replay, OpByOp };

  void check_input(const Tensor& t, const Shape& shape, const char* what) const;
  // step_ + window.backward on the static inputs (records the loss's samples and reduction).
  void step_once();
  void capture();

  AccumulationWindow& window_;
  StepFn step_;
  Shape x_shape_, y_shape_;
  DType dtype_;
  Device device_;
  Mode mode_ = Mode::FirstRun;
  std::string fallback_reason_;

  // CUDA only; the destructor releases them in order: the exec, the pool whose blocks it uses,
  // the stream.
  Stream stream_ = nullptr;
  std::shared_ptr<DevicePool> pool_;
  autograd::Variable x_static_, y_static_;
  detail::GraphExec exec_ = nullptr;
  std::size_t nodes_ = 0;
  std::uint64_t samples_ = 0;  // what a replay adds to the window's host tallies
  Reduction reduction_ = Reduction::Mean;
};

}  // namespace gradaccum::optim
