#include "autograd/variable.h"

#include <utility>

#include "kernels/accumulate.h"

namespace gradaccum::autograd {
namespace {

thread_local bool g_grad_enabled = true;

bool matches(const Tensor& t, const Shape& shape, DType dtype, Device device) {
  return t.defined() && t.shape() == shape && t.dtype() == dtype && t.device() == device;
}

// Allocates `t` as (shape, dtype, device) unless it already is; zeroed when `zero`.
void ensure(Tensor& t, const Shape& shape, DType dtype, Device device, bool zero) {
  if (matches(t, shape, dtype, device)) return;
  t = zero ? Tensor::zeros(shape, dtype, device) : Tensor::empty(shape, dtype, device);
}

}  // namespace

// ---- Variable -----------------------------------------------------------------------------

Variable::Variable(Tensor value, bool requires_grad, std::string name)
    : data_(std::make_shared<detail::VarData>()) {
  GA_CHECK(value.defined(), "Variable: the value tensor is undefined");
  data_->value = std::move(value);
  data_->requires_grad = requires_grad;
  data_->name = std::move(name);
}

void Variable::check_defined(const char* what) const {
  GA_CHECK(data_ != nullptr, what << " of an undefined Variable");
}

const Tensor& Variable::value() const {
  check_defined("value()");
  return data_->value;
}
Tensor& Variable::value() {
  check_defined("value()");
  return data_->value;
}
const std::string& Variable::name() const {
  check_defined("name()");
  return data_->name;
}
void Variable::set_name(std::string name) {
  check_defined("set_name()");
  data_->name = std::move(name);
}
bool Variable::requires_grad() const {
  return data_ != nullptr && data_->requires_grad;
}
void Variable::set_requires_grad(bool requires_grad) {
  check_defined("set_requires_grad()");
  GA_CHECK(data_->is_leaf, "set_requires_grad: only a leaf Variable's flag can be set ('"
                               << data_->name << "' was produced by an op)");
  data_->requires_grad = requires_grad;
}
bool Variable::is_leaf() const {
  check_defined("is_leaf()");
  return data_->is_leaf;
}

float Variable::item() const {
  check_defined("item()");
  GA_CHECK(data_->value.numel() == 1,
           "item() needs a one-element Variable, got " << data_->value.str());
  return data_->value.to_vector()[0];
}

const LossInfo* Variable::loss_info() const {
  check_defined("loss_info()");
  return data_->loss.get();
}
const Tensor& Variable::loss_sum() const {
  check_defined("loss_sum()");
  GA_CHECK(data_->loss != nullptr, "loss_sum() of a Variable that is not a loss");
  return data_->loss_sum;
}

const Tensor& Variable::grad() const {
  check_defined("grad()");
  return data_->grad;
}
Tensor& Variable::grad() {
  check_defined("grad()");
  return data_->grad;
}
const Tensor& Variable::grad_compensation() const {
  check_defined("grad_compensation()");
  return data_->grad_comp;
}
const Tensor& Variable::scratch_grad() const {
  check_defined("scratch_grad()");
  return data_->scratch;
}
Tensor& Variable::grad_compensation() {
  check_defined("grad_compensation()");
  return data_->grad_comp;
}
Tensor& Variable::scratch_grad() {
  check_defined("scratch_grad()");
  return data_->scratch;
}
bool Variable::scratch_written() const {
  check_defined("scratch_written()");
  return data_->is_leaf && data_->grad_written;
}

void Variable::zero_grad() {
  check_defined("zero_grad()");
  if (data_->grad.defined()) data_->grad.zero_();
  if (data_->grad_comp.defined()) data_->grad_comp.zero_();
}

void Variable::to(Device device) {
  check_leaf("to(device)");
  if (data_->value.device() != device) replace_value(data_->value.to(device));
}

void Variable::to(DType dtype) {
  check_leaf("to(dtype)");
  if (data_->value.dtype() != dtype) replace_value(data_->value.to(dtype));
}

void Variable::check_leaf(const char* what) const {
  check_defined(what);
  GA_CHECK(data_->is_leaf, what << ": only leaf Variables are moved or converted, '" << data_->name
                                << "' was produced by an op");
}

void Variable::replace_value(Tensor value) {
  check_leaf("replace_value");
  GA_CHECK(value.defined() && value.shape() == data_->value.shape(),
           "replace_value: expected a value of shape " << data_->value.shape().str() << ", got "
                                                       << value.str());
  data_->value = std::move(value);
  data_->grad = Tensor();  // gradients stay f32; reallocated on the next backward
  data_->grad_comp = Tensor();
  data_->scratch = Tensor();
}

namespace {

// Runs one backward over `tape` from `root`; frees the tape whatever happens.
void run_backward(detail::Tape& tape, detail::VarData& root, const Tensor* root_seed,
                  float root_factor, const BackwardOptions& options) {
  auto& entries = tape.entries();
  detail::BackwardContext ctx(options, &root, root_factor);
  struct FreeOnExit {
    detail::Tape& tape;
    ~FreeOnExit() {
      for (auto& e : tape.entries()) {
        e.output->grad = Tensor();
        e.output->grad_written = false;
        e.output->grad_masked = false;
      }
      tape.free();
    }
  } free_on_exit{tape};

  // Everything that can fail before a leaf gradient is touched happens here: per-backward
  // buffers are allocated, leaf targets allocated (zeroed for Accumulate), flags reset. A
  // failure in this phase leaves every accumulated gradient exactly as it was.
  for (auto& e : entries) {
    detail::VarData& out = *e.output;
    out.grad_written = false;
    out.grad_masked = false;
    if (out.requires_grad && !out.loss) {
      ensure(out.grad, out.value.shape(), out.value.dtype(), out.value.device(), false);
    }
    for (auto& in : e.inputs) {
      if (in->is_leaf && ctx.wants(*in)) {
        in->grad_written = false;
        ctx.leaf_target(*in);
      }
    }
  }
  if (root_seed != nullptr) {
    root.grad.copy_from(*root_seed);
    root.grad_written = true;
  }
  // Leaf finality: a leaf's gradient is final once every node that takes it as input has run
  // (or been passed over).
  const bool report = static_cast<bool>(options.on_leaf_final);
  if (report) {
    for (auto& e : entries) {
      for (auto& in : e.inputs)
        if (in->is_leaf && in->requires_grad) in->pending_uses = 0;
    }
    for (auto& e : entries) {
      if (!e.output->requires_grad) continue;
      for (auto& in : e.inputs)
        if (in->is_leaf && in->requires_grad) ++in->pending_uses;
    }
  }

  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    detail::VarData& out = *it->output;
    if (!out.requires_grad) continue;
    const bool reached = out.grad_written || (ctx.is_root(out) && out.loss != nullptr);
    if (reached) it->backward(ctx);
    if (!report) continue;
    for (auto& in : it->inputs) {
      if (in->is_leaf && in->requires_grad && --in->pending_uses == 0) options.on_leaf_final(*in);
    }
  }
}

}  // namespace

void Variable::backward(const BackwardOptions& options) const {
  check_defined("backward()");
  const Tensor& v = data_->value;
  if (data_->loss == nullptr) {
    GA_CHECK(v.numel() == 1, "backward() of a non-scalar Variable ("
                                 << v.str()
                                 << ") needs a seed gradient: call backward(seed) with a tensor "
                                    "of its shape, dtype and device");
    Tensor seed = Tensor::full(v.shape(), 1.0f, v.dtype(), v.device());
    backward(seed, options);
    return;
  }
  GA_CHECK(data_->requires_grad && tape_ != nullptr,
           "backward(): this loss does not require grad (no input of it did, or it was computed "
           "under NoGradGuard)");
  std::shared_ptr<detail::Tape> tape = tape_->resolve();
  GA_CHECK(!tape->freed(),
           "backward(): the tape of this graph was already freed by an earlier "
           "backward(); run the forward pass again to record a new one");
  if (options.loss_scale) {
    check_dtype(*options.loss_scale, DType::f32, "backward(): loss_scale");
    check_device(*options.loss_scale, v.device(), "backward(): loss_scale");
    GA_CHECK(options.loss_scale->numel() == 1,
             "backward(): loss_scale must hold one element, got " << options.loss_scale->str());
  }
  const LossInfo& info = *data_->loss;
  float factor = 1.0f;
  if (!options.loss_as_sum && info.reduction == Reduction::Mean) {
    factor = static_cast<float>(1.0 / static_cast<double>(info.elements));
  }
  run_backward(*tape, *data_, nullptr, factor, options);
}

void Variable::backward(const Tensor& seed, const BackwardOptions& options) const {
  check_defined("backward(seed)");
  const Tensor& v = data_->value;
  GA_CHECK(data_->requires_grad && tape_ != nullptr,
           "backward(): this Variable does not require grad (it is a leaf, or no input of it "
           "required grad, or it was computed under NoGradGuard)");
  std::shared_ptr<detail::Tape> tape = tape_->resolve();
  GA_CHECK(!tape->freed(),
           "backward(): the tape of this graph was already freed by an earlier "
           "backward(); run the forward pass again to record a new one");
  check_shape(seed, v.shape(), "backward(seed): seed");
  check_device(seed, v.device(), "backward(seed): seed");
  if (data_->loss != nullptr) {
    // A loss: the seed multiplies the reduction's factor (read once on the host).
    const float s = seed.to_vector()[0];
    BackwardOptions o = options;
    const LossInfo& info = *data_->loss;
    double factor = s;
    if (!o.loss_as_sum && info.reduction == Reduction::Mean) {
      factor /= static_cast<double>(info.elements);
    }
    if (o.loss_scale) {
      check_dtype(*o.loss_scale, DType::f32, "backward(): loss_scale");
      check_device(*o.loss_scale, v.device(), "backward(): loss_scale");
    }
    run_backward(*tape, *data_, nullptr, static_cast<float>(factor), o);
    return;
  }
  GA_CHECK(options.loss_scale == nullptr,
           "backward(): loss_scale applies to a loss (from l1_loss), not to " << v.str());
  check_dtype(seed, v.dtype(), "backward(seed): seed");
  run_backward(*tape, *data_, &seed, 1.0f, options);
}

// ---- NoGradGuard ----------------------------------------------------------------------------

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) {
  g_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  g_grad_enabled = previous_;
}
bool grad_enabled() {
  return g_grad_enabled;
}

namespace detail {

// ---- Tape ----------------------------------------------------------------------------------

std::shared_ptr<Tape> Tape::resolve() {
  std::shared_ptr<Tape> t = shared_from_this();
  while (t->forwarded_to_)
    t = t->forwarded_to_;
  return t;
}

void Tape::absorb(Tape& other) {
  GA_CHECK(&other != this, "Tape::absorb of itself");
  for (auto& e : other.entries_)
    entries_.push_back(std::move(e));
  other.entries_.clear();
  other.forwarded_to_ = shared_from_this();
}

void Tape::free() {
  entries_.clear();
  entries_.shrink_to_fit();
  freed_ = true;
}

// ---- BackwardContext ------------------------------------------------------------------------

const Tensor* BackwardContext::grad_of(const VarData& v) const {
  if (v.is_leaf || !v.grad_written) return nullptr;
  return &v.grad;
}

bool BackwardContext::wants(const VarData& leaf) const {
  return leaf.requires_grad && options_.target != LeafGradTarget::None;
}

LeafTarget BackwardContext::leaf_target(VarData& leaf) {
  GA_CHECK(options_.target != LeafGradTarget::None,
           "backward: a leaf target was asked for in a backward that computes no leaf gradient");
  const Tensor& v = leaf.value;
  LeafTarget t;
  if (options_.target == LeafGradTarget::Scratch) {
    ensure(leaf.scratch, v.shape(), DType::f32, v.device(), false);
    t.buffer = &leaf.scratch;
    t.mode = leaf.grad_written ? GradientMode::Accumulate : GradientMode::Overwrite;
    return t;
  }
  ensure(leaf.grad, v.shape(), DType::f32, v.device(), true);
  t.buffer = &leaf.grad;
  t.mode = GradientMode::Accumulate;
  if (options_.kahan) {
    ensure(leaf.grad_comp, v.shape(), DType::f32, v.device(), true);
    t.compensation = &leaf.grad_comp;
  }
  return t;
}

void BackwardContext::mark_written(VarData& leaf) {
  leaf.grad_written = true;
}

void BackwardContext::write_grad(VarData& v,
                                 const std::function<void(Tensor&, GradientMode)>& write,
                                 bool relu_masked) {
  if (!v.requires_grad || (v.is_leaf && !wants(v))) return;
  if (!v.is_leaf) {
    write(v.grad, v.grad_written ? GradientMode::Accumulate : GradientMode::Overwrite);
    v.grad_masked = relu_masked && (!v.grad_written || v.grad_masked);
    v.grad_written = true;
    return;
  }
  // A leaf: the op writes the model dtype into a temporary, the leaf's buffer is f32.
  Tensor tmp = Tensor::empty(v.value.shape(), v.value.dtype(), v.value.device());
  write(tmp, GradientMode::Overwrite);
  add_to_leaf(v, tmp);
}

void BackwardContext::add_to_leaf(VarData& leaf, const Tensor& g) {
  if (!wants(leaf)) return;
  LeafTarget t = leaf_target(leaf);
  if (t.mode == GradientMode::Overwrite) {
    if (g.dtype() == DType::f32) {
      t.buffer->copy_from(g);
    } else {
      t.buffer->zero_();
      accumulate(*t.buffer, g);
    }
  } else {
    AccumulateOptions o;
    o.compensation = t.compensation;
    accumulate(*t.buffer, g, o);
  }
  mark_written(leaf);
}

}  // namespace detail
}  // namespace gradaccum::autograd
