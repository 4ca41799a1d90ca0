// An accumulation window: k micro-batches (any sizes, k from 1 to millions) whose gradients add
// up to the optimizer step of one batch made of all their samples, for `mean` and `sum` alike,
// at the same learning rate:
//
//   optim::AccumulationWindow window(model.parameters(), optim::WindowOptions());
//   optim::SGD opt(model.parameters(), optim::SGDOptions(0.1).momentum(0.9));
//   for (each step) {
//     window.zero_grad();                               // opens the window
//     for (each micro-batch) window.backward(loss_fn(model(x_mb), y_mb));
//     optim::StepReport r = opt.step(window);           // divides once, by the true count
//   }
//
// How: every micro-batch's loss is backpropagated as a SUM (factor 1, times the loss scale) into
// f32 gradient buffers (always +=), and the window counts what it added on the device: samples,
// loss elements (samples x outputs), micro-batches, all 64-bit. The step then scales the sums once,
// inside the SGD update, by 1/(count · loss scale): count = loss elements for `mean` (PyTorch's
// L1Loss count), 1 for `sum`. Nothing is averaged per micro-batch, so uneven windows
// (256 = 60+60+60+60+16) are exact.
//
// Normalization::MicroBatch instead reproduces the common recipe (Lightning; Hugging Face before
// 2024): each micro-batch's loss keeps its own reduction and the window divides by the number of
// micro-batches. It equals the batch step only for `mean` with equal micro-batch sizes; it is
// offered to compare, not to use.
//
// fp16 models: gradients stay f32 (the buffers are f32 whatever the model dtype); the optimizer
// keeps f32 master weights. Loss scaling (static or dynamic, PyTorch GradScaler's rule) with two
// overflow policies:
//   SkipStep (PyTorch's): the window accumulates scaled sums; a window with any non-finite
//     gradient is not applied and the scale backs off. One check per step, on the device.
//   DropMicroBatch (gradaccum's): each micro-batch's gradients go to f32 scratch buffers, are
//     checked on the device, and are added (unscaled by that micro-batch's own loss scale) only
//     when finite; a dropped micro-batch's samples are not counted and the scale backs off for
//     the next micro-batch. All of it is decided on the device, with no host synchronisation
//     inside the window; the step then applies the surviving samples' mean (or sum).
// The step's StepReport says what happened (the one host read per step).
//
// Data parallelism: with WindowOptions::process_group, each rank accumulates its own micro-
// batches (no communication), and the step reduces every rank's window once (sums, counts,
// flags, loss; optim/window_reduction.h) before dividing by the global true count. Ranks may
// hold any number of micro-batches of any sizes, none included; the step is that of one batch
// of all their samples. With WindowOptions::overlap, the reduction instead goes in buckets
// started during the last micro-batch's backward (backward_last), with the same bits.
// docs/distributed.md says how, what it measured, and what a fault does.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/variable.h"
#include "core/state_dict.h"
#include "core/storage.h"
#include "dist/process_group.h"
#include "kernels/exact_sum.h"
#include "kernels/l1_loss.h"
#include "kernels/nonfinite_flag.h"
#include "kernels/window_scalars.h"

namespace gradaccum::optim {

using autograd::Variable;

enum class Normalization {
  Window,      // sums, divided once per step by the window's true count (exact; default)
  MicroBatch,  // each micro-batch normalised by its own count, the window divided by k
};
// How each micro-batch's gradients are added into the window's sums:
//   None:  an f32 sum (one rounding per addition);
//   Kahan: an f32 sum with a compensation (about one rounding in all, but order-dependent);
//   Exact: a fixed-point sum (kernels/exact_sum.h) of every micro-batch's own gradient, rounded
//          once at the step: the bits do not depend on the order, the split over ranks, or the
//          device. 72 bytes per parameter; at most ExactSum::kMaxAddends micro-batches a window.
enum class Compensation { None, Kahan, Exact };
enum class OverflowPolicy { SkipStep, DropMicroBatch };
// How a distributed window makes the ranks' parameters equal at construction.
enum class ParameterSync {
  Broadcast,  // every rank takes rank 0's values (PyTorch DDP)
  Verify,     // every rank must already hold the same bytes: the first parameter that differs is
              // reported
};

const char* normalization_name(Normalization n);
const char* overflow_policy_name(OverflowPolicy p);
const char* compensation_name(Compensation c);

struct LossScaling {
  enum class Kind { None, Static, Dynamic };
  static LossScaling none() { return {}; }
  static LossScaling fixed(float scale) {
    LossScaling s;
    s.kind = Kind::Static;
    s.init_scale = scale;
    return s;
  }
  // PyTorch GradScaler's defaults: 2^16, x2 after 2000 clean steps, x0.5 on overflow.
  static LossScaling dynamic(float init_scale = 65536.0f, float growth_factor = 2.0f,
                             float backoff_factor = 0.5f, std::uint64_t growth_interval = 2000) {
    LossScaling s;
    s.kind = Kind::Dynamic;
    s.init_scale = init_scale;
    s.growth_factor = growth_factor;
    s.backoff_factor = backoff_factor;
    s.growth_interval = growth_interval;
    return s;
  }
  Kind kind = Kind::None;
  float init_scale = 1.0f;
  float growth_factor = 2.0f;
  float backoff_factor = 0.5f;
  std::uint64_t growth_interval = 2000;
};

struct WindowOptions {
  WindowOptions& normalization(Normalization n) {
    normalization_ = n;
    return *this;
  }
  WindowOptions& compensation(Compensation c) {
    compensation_ = c;
    return *this;
  }
  WindowOptions& loss_scaling(const LossScaling& s) {
    loss_scaling_ = s;
    return *this;
  }
  WindowOptions& overflow(OverflowPolicy p) {
    overflow_ = p;
    return *this;
  }
  // Reduce the step across the group's ranks (null: this process alone).
  WindowOptions& process_group(std::shared_ptr<dist::ProcessGroup> pg) {
    process_group_ = std::move(pg);
    return *this;
  }
  WindowOptions& parameter_sync(ParameterSync s) {
    parameter_sync_ = s;
    return *this;
  }
  // Overlap the reduction with the last micro-batch's backward (backward_last): the gradients
  // are reduced in buckets of about bucket_bytes, each started as soon as its gradients are
  // final (PyTorch DDP's buckets). For CPU windows with plain f32 sums and SkipStep (where a
  // gradient is final as soon as the backward has written it); the bits are those of the one
  // reduction at the step. Without a process group there is nothing to overlap.
  WindowOptions& overlap(bool on) {
    overlap_ = on;
    return *this;
  }
  WindowOptions& bucket_bytes(std::size_t bytes) {
    bucket_bytes_ = bytes;
    return *this;
  }
  Normalization normalization() const { return normalization_; }
  Compensation compensation() const { return compensation_; }
  const LossScaling& loss_scaling() const { return loss_scaling_; }
  OverflowPolicy overflow() const { return overflow_; }
  const std::shared_ptr<dist::ProcessGroup>& process_group() const { return process_group_; }
  ParameterSync parameter_sync() const { return parameter_sync_; }
  bool overlap() const { return overlap_; }
  std::size_t bucket_bytes() const { return bucket_bytes_; }

 private:
  Normalization normalization_ = Normalization::Window;
  Compensation compensation_ = Compensation::None;
  LossScaling loss_scaling_;
  OverflowPolicy overflow_ = OverflowPolicy::SkipStep;
  std::shared_ptr<dist::ProcessGroup> process_group_;
  ParameterSync parameter_sync_ = ParameterSync::Broadcast;
  bool overlap_ = false;
  std::size_t bucket_bytes_ = std::size_t{1} << 20;
};

class WindowReduction;

// What one optimizer step did.
struct StepReport {
  bool applied = false;            // false: skipped (overflow, or every micro-batch dropped)
  std::int64_t micro_batches = 0;  // micro-batches counted in the step
  std::int64_t micro_batches_dropped = 0;
  std::int64_t samples = 0;   // samples counted
  std::int64_t elements = 0;  // loss elements counted (samples x outputs)
  float loss_scale = 1.0f;    // the loss scale after the step (next window's)
  double loss_sum = 0.0;      // Σ |pred - target| over the counted micro-batches (compensated)
  double loss = 0.0;          // the window's loss: loss_sum / elements (mean) or sum
  std::string str() const;
};

class AccumulationWindow {
 public:
  // params: the model's parameters (all on one device). Allocates their f32 gradient buffers.
  // With a process group (collective: every rank constructs its window together): checks that
  // every rank has the same parameters (names, shapes, dtypes) and options, then broadcasts
  // rank 0's parameter values (or verifies them); make the optimizer after the window, so that
  // its master weights start from the synchronised values.
  explicit AccumulationWindow(std::vector<Variable> params, WindowOptions options = {});
  ~AccumulationWindow();
  AccumulationWindow(const AccumulationWindow&) = delete;
  AccumulationWindow& operator=(const AccumulationWindow&) = delete;

  // Opens a new window: zeroes the gradients and the counts (the loss scale carries over).
  void zero_grad();
  // One micro-batch: backpropagates the loss (from nn::L1Loss / autograd::l1_loss) and counts
  // its samples. An exception leaves the window as it was before the call.
  void backward(const Variable& loss);
  // The window's last micro-batch (or its only one): backward, and then no more micro-batches
  // until the step. With WindowOptions::overlap, each bucket's reduction starts during this
  // backward as soon as its gradients are final; should the backward then fail, the ranks can
  // no longer agree on the step, and the window says so at the step (abort the group).
  void backward_last(const Variable& loss);

  const WindowOptions& options() const { return options_; }
  Device device() const { return device_; }
  const std::vector<Variable>& parameters() const { return params_; }
  // Host-side tallies of what was submitted (before any drop): no device read.
  std::int64_t micro_batches_submitted() const { return submitted_; }
  std::uint64_t samples_submitted() const { return submitted_samples_; }
  // The current loss scale (one device read).
  float loss_scale() const;
  // The device counts (one device read).
  WindowCounts counts() const;
  // Distributed windows: the bytes each step reduces, and the last reduction's wall time (0
  // without a process group).
  std::size_t reduced_bytes() const;
  double last_reduction_seconds() const;
  // Overlapped windows: the number of buckets (0 when the reduction is one call at the step).
  std::size_t reduction_buckets() const;

  // What carries from one window to the next (the loss scale and its count of clean steps),
  // with the configuration it was made under: the options that decide the arithmetic, and the
  // parameters' names, shapes and dtypes. load_state_dict refuses a state of another
  // configuration (naming the first line that differs) and needs a window holding no micro-batch
  // (between steps); a failed load changes nothing.
  StateDict state_dict() const;
  void load_state_dict(const StateDict& state);

  // ---- for optimizers ----
  struct StepInputs {
    const Tensor* grad_scale;   // f32 [1]: 1/(count · loss scale still carried)
    const NonFiniteFlag* skip;  // raised: do not update
  };
  // Checks the window can be stepped (throws when no sample was submitted, on any rank), reduces
  // it across the ranks when distributed, then computes the gradient scale and the skip
  // decision on the device.
  StepInputs begin_step();
  // Updates the loss scale, reads the outcome (one host synchronisation) and closes the window.
  StepReport end_step();
  // Whether `v` is one of the window's parameters; its compensation buffer (or null).
  bool contains(const Variable& v) const;
  const Tensor* compensation_of(const Variable& v) const;

  // ---- for optim::BatchNormReplay ----
  // How a micro-batch's loss is backpropagated into the window (its factor and loss scale): a
  // replayed pass that collects sums on the way must seed the loss the same way.
  autograd::BackwardOptions backward_options() const;

  // ---- for optim::MicroStepGraph (a captured micro-step replayed as a CUDA graph) ----
  // Throws, as backward would, unless a micro-batch with `reduction` can be added now.
  void check_can_add(Reduction reduction) const;
  // The host-side tallies of a micro-batch whose device work (including the device-side count)
  // ran as a replay: what backward records on the host, without any device work.
  void record_replayed_micro_batch(std::uint64_t samples, Reduction reduction);

 private:
  friend class MicroStepGraph;  // saves and restores the tallies around a capture
  struct HostTallies {
    bool has_reduction;
    Reduction reduction;
    std::int64_t submitted;
    std::uint64_t submitted_samples;
  };
  HostTallies host_tallies() const {
    return {has_reduction_, reduction_, submitted_, submitted_samples_};
  }
  void restore_host_tallies(const HostTallies& t) {
    has_reduction_ = t.has_reduction;
    reduction_ = t.reduction;
    submitted_ = t.submitted;
    submitted_samples_ = t.submitted_samples;
  }

  // One line per option or parameter that decides the window's arithmetic and layout: what
  // every rank must agree on, and what a saved state must match.
  std::vector<std::string> configuration() const;
  void check_open() const;
  void check_not_broken(const char* what) const;
  // The host-side record of one micro-batch added (backward, or a replay).
  void tally_micro_batch(std::uint64_t samples, Reduction reduction);
  void ensure_buffers();
  LossScaleRule rule() const;
  void connect_ranks();
  void reduce_across_ranks();
  // Raises micro_batch_flag_ when the micro-batch's scratch gradients or loss are non-finite.
  void check_micro_batch(const Variable& loss);
  void backward_exact(const Variable& loss, std::uint64_t samples, std::uint64_t elements);
  void round_exact_sums();

  std::vector<Variable> params_;
  WindowOptions options_;
  Device device_ = Device::CPU;
  bool open_ = true;
  bool has_reduction_ = false;
  Reduction reduction_ = Reduction::Mean;
  std::int64_t submitted_ = 0;
  std::uint64_t submitted_samples_ = 0;

  Storage counts_;
  Tensor loss_scale_;      // f32 [1]
  Tensor inv_loss_scale_;  // f32 [1]
  Tensor grad_scale_;      // f32 [1]
  Tensor loss_sum_;        // f32 [1]: Σ loss sums of the counted micro-batches
  Tensor loss_sum_comp_;   // f32 [1]: its Kahan compensation (the sum is ~ loss_sum_ + this)
  NonFiniteFlag micro_batch_flag_;
  NonFiniteFlag skip_flag_;
  Storage step_record_;  // WindowStepRecord: the step's outcome, read with one copy
  std::unique_ptr<WindowReduction> across_ranks_;  // distributed windows only
  std::vector<ExactSum> exact_;                    // Compensation::Exact: per parameter
  ExactSum exact_loss_;                            // and the window's loss sum
  float host_loss_scale_ = 1.0f;  // the loss scale at the window's start, as the last step left it
  bool last_submitted_ = false;   // backward_last was called: no more micro-batches
  bool broken_ = false;           // an overlapped backward failed with its reduction under way
  // During an overlapped backward_last: reports each parameter whose gradient is final.
  std::function<void(const autograd::detail::VarData&)> on_leaf_final_;
  std::unordered_map<const autograd::detail::VarData*, std::size_t> param_index_;
};

}  // namespace gradaccum::optim
