#include "optim/micro_step_graph.h"

#include <exception>
#include <utility>

#include "core/cuda_device.h"
#include "core/device_pool.h"

namespace gradaccum::optim {
namespace {

detail::CopyKind copy_kind_to_device(Device src) {
  return src == Device::CPU ? detail::CopyKind::HostToDevice : detail::CopyKind::DeviceToDevice;
}

}  // namespace

MicroStepGraph::MicroStepGraph(AccumulationWindow& window, StepFn step, const Shape& x_shape,
                               const Shape& y_shape, DType dtype)
    : window_(window),
      step_(std::move(step)),
      x_shape_(x_shape),
      y_shape_(y_shape),
      dtype_(dtype),
      device_(window.device()) {
  GA_CHECK(step_ != nullptr, "MicroStepGraph: the step function is empty");
  GA_CHECK(
      x_shape_.rank() >= 1 && y_shape_.rank() >= 1 && x_shape_[0] > 0 && x_shape_[0] == y_shape_[0],
      "MicroStepGraph: x and y must have the same number of rows (at least one), got x "
          << x_shape_.str() << " and y " << y_shape_.str());
  if (device_ == Device::CPU) {
    fallback_reason_ = "CPU device";
    mode_ = Mode::OpByOp;
    return;
  }
  // Static inputs outside the pool: they live as long as the graph that reads them.
  x_static_ = autograd::Variable(Tensor::empty(x_shape_, dtype_, device_));
  y_static_ = autograd::Variable(Tensor::empty(y_shape_, dtype_, device_));
  pool_ = DevicePool::create();
  stream_ = detail::cuda_stream_create();
}

MicroStepGraph::~MicroStepGraph() {
  if (stream_ != nullptr) {
    try {
      detail::cuda_stream_synchronize(stream_);  // replays still reading the pool's blocks
    } catch (const std::exception&) {
      // A broken context: the next checked call says so; a destructor must not throw.
    }
  }
  detail::cuda_graph_exec_destroy(exec_);
  pool_.reset();
  x_static_ = autograd::Variable();
  y_static_ = autograd::Variable();
  detail::cuda_stream_destroy(stream_);
}

void MicroStepGraph::check_input(const Tensor& t, const Shape& shape, const char* what) const {
  GA_CHECK(t.defined(), "MicroStepGraph::run: " << what << " is undefined");
  GA_CHECK(t.shape() == shape, "MicroStepGraph::run: " << what << " has shape " << t.shape().str()
                                                       << ", expected " << shape.str()
                                                       << " (a graph serves one micro-batch "
                                                          "shape; make another for this one)");
  GA_CHECK(t.dtype() == dtype_, "MicroStepGraph::run: " << what << " is " << dtype_name(t.dtype())
                                                        << ", expected " << dtype_name(dtype_));
  GA_CHECK(t.device() == device_ || (device_ == Device::CUDA && t.device() == Device::CPU),
           "MicroStepGraph::run: " << what << " is on " << device_name(t.device()) << ", expected "
                                   << device_name(device_)
                                   << (device_ == Device::CUDA ? " or CPU" : ""));
}

void MicroStepGraph::step_once() {
  autograd::Variable loss = step_(x_static_, y_static_);
  GA_CHECK(loss.defined() && loss.loss_info() != nullptr,
           "MicroStepGraph: the step function must return a loss from nn::L1Loss / "
           "autograd::l1_loss");
  samples_ = static_cast<std::uint64_t>(loss.loss_info()->samples);
  reduction_ = loss.loss_info()->reduction;
  window_.backward(loss);
}

void MicroStepGraph::run(const Tensor& x, const Tensor& y) {
  check_input(x, x_shape_, "x");
  check_input(y, y_shape_, "y");
  if (device_ == Device::CPU) {
    window_.backward(step_(autograd::Variable(x.clone()), autograd::Variable(y.clone())));
    return;
  }
  if (mode_ == Mode::Replay) window_.check_can_add(reduction_);  // before any device work
  StreamGuard on_stream(stream_);
  detail::cuda_copy_async(x_static_.value().raw_data(), x.raw_data(), x.nbytes(),
                          copy_kind_to_device(x.device()));
  detail::cuda_copy_async(y_static_.value().raw_data(), y.raw_data(), y.nbytes(),
                          copy_kind_to_device(y.device()));
  if (mode_ == Mode::Replay) {
    detail::cuda_graph_launch(exec_, stream_);
    window_.record_replayed_micro_batch(samples_, reduction_);
    return;
  }
  PoolScope pooled(pool_);
  step_once();  // the first run's warm-up, or the fallback
  if (mode_ == Mode::FirstRun) capture();
}

// Records the micro-step just warmed up. Nothing runs: on success the graph replays from the next
// run() on; on any failure the capture is ended, what it recorded dropped, and the reason kept.
void MicroStepGraph::capture() {
  mode_ = Mode::OpByOp;
  const AccumulationWindow::HostTallies tallies = window_.host_tallies();
  std::string why;
  detail::Graph graph = nullptr;
  try {
    detail::cuda_begin_capture(stream_);
    try {
      step_once();
    } catch (...) {
      detail::cuda_abandon_capture(stream_);
      throw;
    }
    graph = detail::cuda_end_capture(stream_);
    nodes_ = detail::cuda_graph_node_count(graph);
    exec_ = detail::cuda_graph_instantiate(graph);
  } catch (const std::exception& e) {
    why = e.what();
  }
  detail::cuda_graph_destroy(graph);  // the exec holds what it needs
  // The capture's window.backward counted a micro-batch that did not run.
  window_.restore_host_tallies(tallies);
  if (exec_ == nullptr) {
    nodes_ = 0;
    detail::cuda_clear_last_error();
    fallback_reason_ = "capture failed, running op by op: " + (why.empty() ? "unknown" : why);
    return;
  }
  mode_ = Mode::Replay;
}

}  // namespace gradaccum::optim
