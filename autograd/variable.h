// Variables and the tape (reverse-mode autograd).
//
// A Variable is a shared handle to a value tensor and, for leaves that require it, an f32
// gradient buffer. Every op on Variables that need a gradient records one entry on a tape: its
// backward rule, written right under its forward (see autograd/functions.cpp). backward() on the
// result replays the tape in reverse, adds (+=) into the leaves' gradient buffers, and frees the
// tape: a second backward through it throws.
//
//   Variable w(linear_weight_init(4, 8, seed), /*requires_grad=*/true, "w");
//   Variable y = autograd::linear(x, w, nullptr);   // records linear's backward
//   ... loss.backward();                             // w.grad() += dloss/dw
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/gemm_config.h"
#include "kernels/l1_loss.h"
#include "kernels/linear.h"

namespace gradaccum::autograd {

namespace detail {
struct VarData;
class Tape;
}  // namespace detail

// Where backward() puts the gradients of leaves that require one (parameters).
enum class LeafGradTarget {
  Accumulate,  // grad() += gradient (the default; a window's accumulation buffers)
  Scratch,     // scratch_grad() = gradient of this backward alone (drop-micro-batch policy)
  None,        // no leaf gradient is computed: a pass run only for what its ops collect on the
               // way (BatchNorm's window sums, optim/batch_norm_replay.h)
};

struct BackwardOptions {
  // How the seed of a loss (from autograd::l1_loss) is weighted: as its reduction says (1/count
  // for a mean, PyTorch's loss.backward()), or as the plain sum of its elements (factor 1), which
  // is what an accumulation window does: it divides once, at the step, by the true count.
  bool loss_as_sum = false;
  // Optional f32 [1] on the loss's device multiplying the loss seed (the loss scale).
  const Tensor* loss_scale = nullptr;
  LeafGradTarget target = LeafGradTarget::Accumulate;
  // Kahan-compensated accumulation into grad() (Accumulate target only): each leaf keeps an
  // f32 compensation buffer (grad_compensation()).
  bool kahan = false;
  // Called once for each leaf that requires grad and is an input of this backward's tape, as
  // soon as no node left to run can write its gradient (DDP's gradient-ready hook: a data-
  // parallel window starts reducing the gradient while the rest of the backward runs). Leaves
  // this backward did not reach are final too and are reported as well.
  std::function<void(const detail::VarData& leaf)> on_leaf_final;
};

// What a loss Variable knows about its reduction (for windows and for item()).
struct LossInfo {
  Reduction reduction = Reduction::Mean;
  std::int64_t samples = 0;   // rows of the prediction
  std::int64_t elements = 0;  // elements of the prediction (samples x outputs)
};

class Variable {
 public:
  Variable() = default;  // undefined
  explicit Variable(Tensor value, bool requires_grad = false, std::string name = "");

  bool defined() const { return data_ != nullptr; }
  const Tensor& value() const;
  Tensor& value();
  const Shape& shape() const { return value().shape(); }
  DType dtype() const { return value().dtype(); }
  Device device() const { return value().device(); }
  const std::string& name() const;
  void set_name(std::string name);
  bool requires_grad() const;
  // Only on leaves (a Variable no op produced).
  void set_requires_grad(bool requires_grad);
  bool is_leaf() const;
  // The value of a one-element Variable, read on the host.
  float item() const;
  // For a loss produced by autograd::l1_loss: its reduction and counts; null otherwise.
  const LossInfo* loss_info() const;
  // For a loss: the sum of |pred - target| (f32 [1]); value() holds the reduced loss.
  const Tensor& loss_sum() const;

  // f32 gradient (same shape, same device); undefined until a backward reaches this leaf.
  const Tensor& grad() const;
  Tensor& grad();
  // Kahan compensation of grad() (true sum = grad + compensation); undefined unless used.
  const Tensor& grad_compensation() const;
  Tensor& grad_compensation();
  const Tensor& scratch_grad() const;  // LeafGradTarget::Scratch buffer
  Tensor& scratch_grad();
  // Whether the last backward wrote scratch_grad() (it is stale otherwise).
  bool scratch_written() const;
  // Zeroes grad() and its compensation (keeps the buffers).
  void zero_grad();
  // Moves/converts the value (a leaf only); gradient buffers are dropped, the next backward
  // allocates them again (f32, on the new device).
  void to(Device device);
  void to(DType dtype);
  // Puts `value` (the same shape: this value converted, as to() would) in place of a leaf's value
  // and drops the gradient buffers as to() does. nn::Module::to converts every parameter first
  // and then replaces them all, so that a conversion that fails changes no parameter.
  void replace_value(Tensor value);

  // Backpropagates from this Variable: a one-element Variable is seeded with 1 (a loss as its
  // BackwardOptions say); any other needs `seed` (its shape, dtype and device).
  void backward(const BackwardOptions& options = {}) const;
  void backward(const Tensor& seed, const BackwardOptions& options = {}) const;

  // Same underlying variable (handles compare by identity).
  bool same(const Variable& other) const { return data_ == other.data_; }

  // Internals used by the ops in autograd/functions.cpp.
  const std::shared_ptr<detail::VarData>& data() const { return data_; }
  const std::shared_ptr<detail::Tape>& tape() const { return tape_; }
  Variable(std::shared_ptr<detail::VarData> data, std::shared_ptr<detail::Tape> tape)
      : data_(std::move(data)), tape_(std::move(tape)) {}

 private:
  void check_defined(const char* what) const;
  void check_leaf(const char* what) const;

  std::shared_ptr<detail::VarData> data_;
  // The tape that produced this Variable (null for leaves and for values computed without
  // recording). The tape holds VarData, never Tapes, so there are no reference cycles.
  std::shared_ptr<detail::Tape> tape_;
};

// While alive, ops record nothing (evaluation): results do not require grad.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
bool grad_enabled();

namespace detail {

struct VarData {
  Tensor value;
  Tensor grad;       // leaves: f32 accumulation buffer; non-leaves: model dtype, per backward
  Tensor grad_comp;  // leaves: Kahan compensation
  Tensor scratch;    // leaves: LeafGradTarget::Scratch buffer
  bool requires_grad = false;
  bool is_leaf = true;
  bool grad_written = false;  // during a backward: this variable's per-backward buffer is live
  // The output of a fused linear + ReLU: a consumer may mask its gradient by value > 0 itself.
  bool relu_output = false;
  // During a backward: every write into grad so far was already masked by value > 0, so the
  // ReLU's own backward has nothing left to do.
  bool grad_masked = false;
  // During a backward with on_leaf_final: the nodes still to run that take this leaf as input.
  int pending_uses = 0;
  std::string name;
  std::unique_ptr<LossInfo> loss;  // set by l1_loss
  Tensor loss_sum;                 // set by l1_loss
};

class BackwardContext;

struct TapeEntry {
  const char* op;
  std::shared_ptr<VarData> output;
  std::vector<std::shared_ptr<VarData>> inputs;
  std::function<void(BackwardContext&)> backward;
};

class Tape : public std::enable_shared_from_this<Tape> {
 public:
  void record(TapeEntry entry) { entries_.push_back(std::move(entry)); }
  bool freed() const { return freed_; }
  std::vector<TapeEntry>& entries() { return entries_; }
  // The live tape this one stands for (itself unless absorbed into another).
  std::shared_ptr<Tape> resolve();
  // Moves the other tape's entries after this one's (two graphs meeting in one op: both orders
  // are topological, the graphs being independent so far); `other` then forwards here.
  void absorb(Tape& other);
  // Drops every entry (and with them the saved activations); backward through it then throws.
  void free();

 private:
  std::vector<TapeEntry> entries_;
  bool freed_ = false;
  std::shared_ptr<Tape> forwarded_to_;
};

// Where a leaf's gradient goes in one backward.
struct LeafTarget {
  Tensor* buffer = nullptr;  // f32
  GradientMode mode = GradientMode::Accumulate;
  Tensor* compensation = nullptr;  // Kahan, Accumulate only
};

// The state of one backward pass, handed to every entry's rule.
class BackwardContext {
 public:
  BackwardContext(const BackwardOptions& options, const VarData* root, float root_factor)
      : options_(options), root_(root), root_factor_(root_factor) {}
  const BackwardOptions& options() const { return options_; }
  bool is_root(const VarData& v) const { return &v == root_; }
  // The factor a root loss is seeded with (reduction and seed, without the loss scale).
  float root_factor() const { return root_factor_; }
  // The gradient of a non-leaf variable reached so far, or null when nothing reached it.
  const Tensor* grad_of(const VarData& v) const;
  // Writes the gradient of v (v's dtype, shape and device) through `write(buffer, mode)`: into
  // v's per-backward buffer for a non-leaf, or into a temporary then added to the leaf's f32
  // target. Nothing happens when v does not require a gradient. relu_masked: the write masks
  // what it writes by v.value > 0 (see VarData::grad_masked).
  void write_grad(VarData& v, const std::function<void(Tensor&, GradientMode)>& write,
                  bool relu_masked = false);
  // Whether this backward computes the gradient of `leaf` (it requires one, and the target is
  // not LeafGradTarget::None).
  bool wants(const VarData& leaf) const;
  // A leaf's f32 target for this backward (allocated on first use). Call mark_written after
  // writing to it.
  LeafTarget leaf_target(VarData& leaf);
  // Adds g (f32 or the model dtype, the leaf's shape) into the leaf's target.
  void add_to_leaf(VarData& leaf, const Tensor& g);
  void mark_written(VarData& leaf);

 private:
  BackwardOptions options_;
  const VarData* root_;
  float root_factor_;
};

}  // namespace detail
}  // namespace gradaccum::autograd
