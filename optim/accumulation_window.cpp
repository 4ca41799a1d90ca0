#include "optim/accumulation_window.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <vector>

#include "dist/rank_agreement.h"
#include "kernels/accumulate.h"
#include "kernels/l1_loss.h"
#include "optim/window_reduction.h"

namespace gradaccum::optim {
namespace {

Device device_of(const std::vector<Variable>& params) {
  GA_CHECK(!params.empty(), "AccumulationWindow: no parameters");
  const Device d = params.front().device();
  for (const Variable& p : params) {
    GA_CHECK(p.defined() && p.is_leaf() && p.requires_grad(),
             "AccumulationWindow: every parameter must be a leaf that requires grad");
    GA_CHECK(p.device() == d, "AccumulationWindow: parameters on different devices ('"
                                  << params.front().name() << "' on " << device_name(d) << ", '"
                                  << p.name() << "' on " << device_name(p.device()) << ")");
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    for (std::size_t j = i + 1; j < params.size(); ++j) {
      GA_CHECK(!params[i].same(params[j]),
               "AccumulationWindow: parameter '" << params[i].name() << "' listed twice");
    }
  }
  return d;
}

bool is_f32_like(const Tensor& t, const Tensor& like) {
  return t.defined() && t.dtype() == DType::f32 && t.shape() == like.shape() &&
         t.device() == like.device();
}

}  // namespace

const char* normalization_name(Normalization n) {
  return n == Normalization::Window ? "window" : "micro-batch";
}
const char* overflow_policy_name(OverflowPolicy p) {
  return p == OverflowPolicy::SkipStep ? "skip-step" : "drop-micro-batch";
}
const char* compensation_name(Compensation c) {
  return c == Compensation::Kahan ? "kahan" : c == Compensation::Exact ? "exact" : "naive";
}

std::string StepReport::str() const {
  std::ostringstream os;
  os << (applied ? "applied" : "skipped") << ": " << micro_batches << " micro-batches ("
     << micro_batches_dropped << " dropped), " << samples << " samples, " << elements
     << " loss elements, loss " << loss << ", loss scale " << loss_scale;
  return os.str();
}

AccumulationWindow::AccumulationWindow(std::vector<Variable> params, WindowOptions options)
    : params_(std::move(params)),
      options_(options),
      device_(device_of(params_)),
      counts_(make_window_counts(device_)),
      micro_batch_flag_(device_),
      skip_flag_(device_),
      step_record_(make_window_step_record(device_)) {
  const LossScaling& ls = options_.loss_scaling();
  GA_CHECK(std::isfinite(ls.init_scale) && ls.init_scale > 0.0f,
           "AccumulationWindow: the loss scale must be finite and > 0, got " << ls.init_scale);
  if (ls.kind == LossScaling::Kind::Dynamic) {
    GA_CHECK(ls.growth_factor > 1.0f && ls.backoff_factor > 0.0f && ls.backoff_factor < 1.0f &&
                 ls.growth_interval > 0,
             "AccumulationWindow: dynamic loss scaling needs growth > 1, 0 < backoff < 1 and "
             "interval > 0, got growth "
                 << ls.growth_factor << ", backoff " << ls.backoff_factor << ", interval "
                 << ls.growth_interval);
  }
  const float init = ls.kind == LossScaling::Kind::None ? 1.0f : ls.init_scale;
  loss_scale_ = Tensor::full({1}, init, DType::f32, device_);
  inv_loss_scale_ = Tensor::full({1}, 1.0f / init, DType::f32, device_);
  grad_scale_ = Tensor::zeros({1}, DType::f32, device_);
  loss_sum_ = Tensor::zeros({1}, DType::f32, device_);
  loss_sum_comp_ = Tensor::zeros({1}, DType::f32, device_);
  host_loss_scale_ = init;
  zero_grad();
  if (options_.process_group()) connect_ranks();
}

AccumulationWindow::~AccumulationWindow() {
  if (!across_ranks_) return;
  // Gradients that are views of the reduction buffer get memory of their own before it goes:
  // the parameters outlive the window.
  for (Variable& p : params_) {
    if (!p.grad().defined() || !across_ranks_->holds(p.grad().raw_data())) continue;
    try {
      p.grad() = p.grad().clone();
    } catch (...) {
      p.grad() = Tensor();  // no memory for a copy: the gradient is dropped, never left dangling
    }
  }
}

std::vector<std::string> AccumulationWindow::configuration() const {
  const LossScaling& ls = options_.loss_scaling();
  std::vector<std::string> config;
  config.push_back("parameters: " + std::to_string(params_.size()));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Variable& p = params_[i];
    config.push_back("parameter " + std::to_string(i) + " '" + p.name() + "': " + p.shape().str() +
                     " " + dtype_name(p.dtype()));
  }
  config.push_back(std::string("normalization: ") + normalization_name(options_.normalization()));
  config.push_back(std::string("accumulation: ") + compensation_name(options_.compensation()));
  std::ostringstream scaling;
  scaling << "loss scaling: "
          << (ls.kind == LossScaling::Kind::None     ? "none"
              : ls.kind == LossScaling::Kind::Static ? "static"
                                                     : "dynamic")
          << " init " << ls.init_scale << " growth " << ls.growth_factor << " backoff "
          << ls.backoff_factor << " interval " << ls.growth_interval;
  config.push_back(scaling.str());
  config.push_back(std::string("overflow: ") + overflow_policy_name(options_.overflow()));
  return config;
}

StateDict AccumulationWindow::state_dict() const {
  StateDict s;
  const std::vector<std::string> config = configuration();
  s.set_text("configuration", std::to_string(config.size()));
  for (std::size_t i = 0; i < config.size(); ++i)
    s.set_text("configuration." + std::to_string(i), config[i]);
  const float scale = loss_scale();
  std::uint32_t bits = 0;
  std::memcpy(&bits, &scale, sizeof bits);
  s.set_text("loss_scale_bits", std::to_string(bits));
  char readable[32];
  std::snprintf(readable, sizeof readable, "%.9g", static_cast<double>(scale));
  s.set_text("loss_scale", readable);  // for a person; the bits are what is loaded
  s.set_text("growth_tracker", std::to_string(read_window_counts(counts_).growth_tracker));
  return s;
}

void AccumulationWindow::load_state_dict(const StateDict& s) {
  check_not_broken("load_state_dict");
  GA_CHECK(open_ && submitted_ == 0, "AccumulationWindow::load_state_dict: the window holds "
                                         << submitted_
                                         << " micro-batches; expected none (load between steps)");
  const std::vector<std::string> config = configuration();
  GA_CHECK(s.integer("configuration") == static_cast<std::int64_t>(config.size()),
           "AccumulationWindow::load_state_dict: the state's configuration has "
               << s.text("configuration") << " lines, this window's " << config.size()
               << "; expected the same configuration");
  for (std::size_t i = 0; i < config.size(); ++i) {
    const std::string& saved = s.text("configuration." + std::to_string(i));
    GA_CHECK(saved == config[i], "AccumulationWindow::load_state_dict: the state was saved with '"
                                     << saved << "', this window has '" << config[i]
                                     << "'; expected the same configuration");
  }
  const std::int64_t bits = s.integer("loss_scale_bits");
  GA_CHECK(bits >= 0 && bits <= static_cast<std::int64_t>(UINT32_MAX),
           "AccumulationWindow::load_state_dict: loss_scale_bits " << bits << " is not an f32");
  float scale = 0;
  const auto word = static_cast<std::uint32_t>(bits);
  std::memcpy(&scale, &word, sizeof scale);
  GA_CHECK(std::isfinite(scale) && scale > 0.0f,
           "AccumulationWindow::load_state_dict: loss scale " << scale << "; expected finite, > 0");
  const std::int64_t growth = s.integer("growth_tracker");
  GA_CHECK(growth >= 0, "AccumulationWindow::load_state_dict: growth_tracker " << growth);
  WindowCounts counts = read_window_counts(counts_);
  counts.growth_tracker = static_cast<std::uint64_t>(growth);
  write_window_counts(counts_, counts);
  loss_scale_.copy_from(Tensor::full({1}, scale));
  inv_loss_scale_.copy_from(
      Tensor::full({1}, static_cast<float>(1.0 / static_cast<double>(scale))));
  host_loss_scale_ = scale;
}

void AccumulationWindow::connect_ranks() {
  dist::ProcessGroup& pg = *options_.process_group();
  // Everything that decides the step's layout and arithmetic must agree, or the reduction
  // would combine unlike things (or hang on buffers of different sizes).
  std::vector<std::string> config = configuration();
  config.push_back(
      std::string("parameter sync: ") +
      (options_.parameter_sync() == ParameterSync::Broadcast ? "broadcast" : "verify"));
  config.push_back(options_.overlap()
                       ? "overlap: buckets of " + std::to_string(options_.bucket_bytes()) + " bytes"
                       : std::string("overlap: off"));
  dist::check_same_on_every_rank(pg, "the window's configuration", config);

  if (options_.parameter_sync() == ParameterSync::Broadcast) {
    std::vector<Tensor*> values;
    for (Variable& p : params_)
      values.push_back(&p.value());
    dist::broadcast_tensors(pg, values, 0);
  } else {
    std::vector<std::pair<std::string, const Tensor*>> values;
    for (std::size_t i = 0; i < params_.size(); ++i)
      values.emplace_back("parameter " + std::to_string(i) + " '" + params_[i].name() + "'",
                          &params_[i].value());
    dist::check_tensors_identical(pg, values);
  }
  const Compensation c = options_.compensation();
  if (options_.overlap()) {
    // Elsewhere a gradient changes after the backward (Kahan's pairs are interleaved, drops and
    // exact sums add at the end, CUDA gradients live on the device): nothing could start early.
    GA_CHECK(device_ == Device::CPU && c == Compensation::None &&
                 options_.overflow() == OverflowPolicy::SkipStep,
             "WindowOptions::overlap: needs a CPU window with plain f32 sums and the SkipStep "
             "overflow policy; got a "
                 << device_name(device_) << " window, accumulation " << compensation_name(c)
                 << ", overflow " << overflow_policy_name(options_.overflow()));
    GA_CHECK(options_.bucket_bytes() > 0, "WindowOptions::bucket_bytes: expected at least 1");
    for (std::size_t i = 0; i < params_.size(); ++i)
      param_index_[params_[i].data().get()] = i;
  }
  across_ranks_ =
      std::make_unique<WindowReduction>(options_.process_group(), params_,
                                        c == Compensation::Kahan   ? WindowReduction::Sums::Kahan
                                        : c == Compensation::Exact ? WindowReduction::Sums::Exact
                                                                   : WindowReduction::Sums::F32,
                                        options_.overlap() ? options_.bucket_bytes() : 0);
  // Where the buffer can hold them, the gradient sums live in it: nothing to copy at the step.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (float* mem = across_ranks_->gradient_memory(i)) {
      Variable& p = params_[i];
      Tensor view = Tensor::borrow(mem, p.shape(), DType::f32, device_);
      view.copy_from(p.grad());
      p.grad() = std::move(view);
    }
  }
}

std::size_t AccumulationWindow::reduced_bytes() const {
  return across_ranks_ ? across_ranks_->bytes() : 0;
}

double AccumulationWindow::last_reduction_seconds() const {
  return across_ranks_ ? across_ranks_->last_seconds() : 0.0;
}

std::size_t AccumulationWindow::reduction_buckets() const {
  return across_ranks_ ? across_ranks_->buckets() : 0;
}

void AccumulationWindow::reduce_across_ranks() {
  const WindowReduction::Totals t = across_ranks_->reduce(
      {&params_, &counts_, &skip_flag_, &loss_sum_, &loss_sum_comp_, &exact_, &exact_loss_},
      {static_cast<std::uint64_t>(submitted_), has_reduction_, reduction_});
  has_reduction_ = t.tally.has_reduction;
  reduction_ = t.tally.reduction;
  const LossScaling& ls = options_.loss_scaling();
  if (options_.overflow() == OverflowPolicy::DropMicroBatch &&
      ls.kind == LossScaling::Kind::Dynamic) {
    // Each rank backed its own scale off for its own drops. One process would have backed off
    // once per dropped micro-batch, in f32: so does every rank, from the window's start.
    float scale = host_loss_scale_;
    for (std::uint64_t i = 0; i < t.counts.dropped && scale > 0.0f; ++i)
      scale = scale * ls.backoff_factor;
    const float inv = static_cast<float>(1.0 / static_cast<double>(scale));
    loss_scale_.copy_from(Tensor::full({1}, scale));
    inv_loss_scale_.copy_from(Tensor::full({1}, inv));
  }
}

LossScaleRule AccumulationWindow::rule() const {
  const LossScaling& ls = options_.loss_scaling();
  LossScaleRule r;
  r.dynamic = ls.kind == LossScaling::Kind::Dynamic;
  r.backoff = ls.backoff_factor;
  r.growth = ls.growth_factor;
  r.growth_interval = ls.growth_interval;
  return r;
}

void AccumulationWindow::ensure_buffers() {
  const bool kahan = options_.compensation() == Compensation::Kahan;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Variable& p = params_[i];
    GA_CHECK(p.device() == device_, "AccumulationWindow: parameter '"
                                        << p.name() << "' moved to " << device_name(p.device())
                                        << " after the window was made on "
                                        << device_name(device_));
    // A gradient that was dropped (a dtype change) comes back in the reduction buffer, where
    // the step (and an overlapped bucket) expects it.
    float* in_buffer = across_ranks_ ? across_ranks_->gradient_memory(i) : nullptr;
    if (in_buffer != nullptr && p.grad().raw_data() != in_buffer) {
      p.grad() = Tensor::borrow(in_buffer, p.shape(), DType::f32, device_);
      p.grad().zero_();
    } else if (!is_f32_like(p.grad(), p.value())) {
      p.grad() = Tensor::zeros(p.shape(), DType::f32, device_);
    }
    if (kahan && !is_f32_like(p.grad_compensation(), p.value())) {
      p.grad_compensation() = Tensor::zeros(p.shape(), DType::f32, device_);
    }
  }
  if (options_.compensation() == Compensation::Exact && exact_.empty()) {
    for (const Variable& p : params_)
      exact_.emplace_back(p.shape(), device_);
    exact_loss_ = ExactSum({1}, device_);
  }
}

void AccumulationWindow::zero_grad() {
  check_not_broken("zero_grad");
  ensure_buffers();
  for (Variable& p : params_)
    p.zero_grad();
  for (ExactSum& e : exact_)
    e.zero();
  if (exact_loss_.defined()) exact_loss_.zero();
  reset_window_counts(counts_);
  loss_sum_.zero_();
  loss_sum_comp_.zero_();
  skip_flag_.clear();
  submitted_ = 0;
  submitted_samples_ = 0;
  has_reduction_ = false;
  last_submitted_ = false;
  open_ = true;
}

void AccumulationWindow::check_open() const {
  GA_CHECK(open_,
           "AccumulationWindow::backward: the window was stepped; call zero_grad() to "
           "open the next one");
  GA_CHECK(!last_submitted_,
           "AccumulationWindow::backward: the window's last micro-batch was submitted "
           "(backward_last); step, then zero_grad() to open the next window");
}

void AccumulationWindow::check_not_broken(const char* what) const {
  GA_CHECK(!broken_, what << ": an overlapped backward_last() failed after its reduction had "
                             "started, so the ranks can no longer agree on this step: abort "
                             "the group (ProcessGroup::abort)");
}

void AccumulationWindow::backward_last(const Variable& loss) {
  const bool overlap = across_ranks_ && across_ranks_->overlaps();
  if (!overlap) {
    backward(loss);
    last_submitted_ = true;
    return;
  }
  check_open();  // before any bucket could start
  on_leaf_final_ = [this](const autograd::detail::VarData& leaf) {
    const auto it = param_index_.find(&leaf);
    if (it != param_index_.end()) across_ranks_->gradient_final(it->second);
  };
  try {
    backward(loss);
    // Parameters the graph did not reach are final too: every bucket goes, in order.
    across_ranks_->start_all_buckets();
  } catch (...) {
    on_leaf_final_ = nullptr;
    if (across_ranks_->started()) broken_ = true;
    throw;
  }
  on_leaf_final_ = nullptr;
  last_submitted_ = true;
}

void AccumulationWindow::check_can_add(Reduction reduction) const {
  check_open();
  if (options_.compensation() == Compensation::Exact) {
    ExactSum::check_addends(static_cast<std::uint64_t>(submitted_) + 1,
                            "AccumulationWindow::backward (micro-batches in one window)");
  }
  GA_CHECK(!has_reduction_ || reduction == reduction_,
           "AccumulationWindow::backward: micro-batches of one window must share a reduction ("
               << reduction_name(reduction_) << " then " << reduction_name(reduction) << ")");
}

void AccumulationWindow::record_replayed_micro_batch(std::uint64_t samples, Reduction reduction) {
  check_can_add(reduction);
  tally_micro_batch(samples, reduction);
}

void AccumulationWindow::tally_micro_batch(std::uint64_t samples, Reduction reduction) {
  has_reduction_ = true;
  reduction_ = reduction;
  submitted_ += 1;
  submitted_samples_ += samples;
}

void AccumulationWindow::backward(const Variable& loss) {
  check_open();
  GA_CHECK(loss.defined() && loss.loss_info() != nullptr,
           "AccumulationWindow::backward needs a loss from nn::L1Loss / autograd::l1_loss");
  const autograd::LossInfo& info = *loss.loss_info();
  GA_CHECK(loss.device() == device_, "AccumulationWindow::backward: the loss is on "
                                         << device_name(loss.device()) << ", the window on "
                                         << device_name(device_));
  check_can_add(info.reduction);
  GA_CHECK(info.samples > 0 && info.elements > 0,
           "AccumulationWindow::backward: the micro-batch has no samples ("
               << info.samples << " samples, " << info.elements
               << " loss elements): expected at least one");
  ensure_buffers();

  if (options_.compensation() == Compensation::Exact) {
    backward_exact(loss, static_cast<std::uint64_t>(info.samples),
                   static_cast<std::uint64_t>(info.elements));
    tally_micro_batch(static_cast<std::uint64_t>(info.samples), info.reduction);
    return;
  }
  const bool kahan = options_.compensation() == Compensation::Kahan;
  autograd::BackwardOptions o = backward_options();
  const auto samples = static_cast<std::uint64_t>(info.samples);
  const auto elements = static_cast<std::uint64_t>(info.elements);

  if (options_.overflow() == OverflowPolicy::SkipStep) {
    // Straight into the window's buffers (+=). Everything that can fail does so before the
    // first gradient is touched (see Variable::backward).
    o.target = autograd::LeafGradTarget::Accumulate;
    o.kahan = kahan;
    // The window's loss sum continues its chain over this micro-batch's rows (l1_loss_forward,
    // Accumulate), like the gradients: split-invariant. Adding the micro-batch's own sum would
    // not be. The prediction and target are taken from the loss's tape entry before backward
    // frees it.
    std::shared_ptr<autograd::detail::VarData> pred, target;
    if (loss.tape() != nullptr) {
      for (const auto& e : loss.tape()->resolve()->entries()) {
        if (e.output == loss.data() && e.inputs.size() == 2) {
          pred = e.inputs[0];
          target = e.inputs[1];
        }
      }
    }
    loss.backward(o);
    const WindowCountArgs count{&counts_,     samples,          elements,
                                &loss_scale_, &inv_loss_scale_, rule()};
    if (pred && target) {
      // The loss chain (compensated: a window may hold billions of rows) and the count in one
      // launch (one graph node fewer).
      L1ForwardExtras extras;
      extras.compensation = &loss_sum_comp_;
      extras.count = &count;
      l1_loss_forward(pred->value, target->value, loss_sum_, GradientMode::Accumulate, extras);
    } else {
      AccumulateOptions a;
      a.compensation = &loss_sum_comp_;
      accumulate(loss_sum_, loss.loss_sum(), a);
      window_count_micro_batch(counts_, nullptr, samples, elements, loss_scale_, inv_loss_scale_,
                               rule());
    }
  } else {
    // Scratch buffers (overwritten), checked, then added unscaled unless non-finite; the flag
    // gates the additions and the counts on the device.
    o.target = autograd::LeafGradTarget::Scratch;
    loss.backward(o);
    // One check and one addition for all of them (two graph nodes, not two per parameter).
    check_micro_batch(loss);
    std::vector<AccumulateTarget> targets;
    for (Variable& p : params_) {
      if (!p.scratch_written()) continue;
      targets.push_back({&p.grad(), &p.scratch_grad(), kahan ? &p.grad_compensation() : nullptr});
    }
    // The loss is not loss-scaled.
    AccumulateTarget loss_target{&loss_sum_, &loss.loss_sum(), &loss_sum_comp_};
    loss_target.apply_scale = false;
    targets.push_back(loss_target);
    AccumulateOptions a;
    a.scale = &inv_loss_scale_;
    a.skip_if = &micro_batch_flag_;
    accumulate(targets, a);
    window_count_micro_batch(counts_, &micro_batch_flag_, samples, elements, loss_scale_,
                             inv_loss_scale_, rule());
  }
  tally_micro_batch(samples, info.reduction);
}

// Compensation::Exact: each micro-batch's own gradient (scratch buffers, overwritten: a chain
// from zero) is added exactly; a non-finite one is never added. SkipStep: any non-finite addend
// raises the step's skip flag. DropMicroBatch: the micro-batch is checked first and, if
// non-finite, adds nothing and is not counted; the others are unscaled by their own loss scale.
void AccumulationWindow::backward_exact(const Variable& loss, std::uint64_t samples,
                                        std::uint64_t elements) {
  autograd::BackwardOptions o = backward_options();
  o.target = autograd::LeafGradTarget::Scratch;
  loss.backward(o);
  const bool drop = options_.overflow() == OverflowPolicy::DropMicroBatch;
  ExactAddOptions a;
  if (drop) {
    check_micro_batch(loss);
    a.scale = &inv_loss_scale_;
    a.skip_if = &micro_batch_flag_;
  } else {
    a.nonfinite = &skip_flag_;
  }
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].scratch_written()) exact_[i].add(params_[i].scratch_grad(), a);
  }
  ExactAddOptions la = a;
  la.scale = nullptr;  // the loss is not loss-scaled
  exact_loss_.add(loss.loss_sum(), la);
  window_count_micro_batch(counts_, drop ? &micro_batch_flag_ : nullptr, samples, elements,
                           loss_scale_, inv_loss_scale_, rule());
}

autograd::BackwardOptions AccumulationWindow::backward_options() const {
  autograd::BackwardOptions o;
  o.loss_as_sum = options_.normalization() == Normalization::Window;
  o.loss_scale = options_.loss_scaling().kind != LossScaling::Kind::None ? &loss_scale_ : nullptr;
  o.on_leaf_final = on_leaf_final_;
  return o;
}

void AccumulationWindow::check_micro_batch(const Variable& loss) {
  micro_batch_flag_.clear();
  std::vector<const Tensor*> written;
  for (Variable& p : params_) {
    if (p.scratch_written()) written.push_back(&p.scratch_grad());
  }
  // A non-finite loss with finite gradients (an infinite target: L1's gradient is only its
  // sign) is garbage too: dropped like an overflow.
  written.push_back(&loss.loss_sum());
  check_finite(written, micro_batch_flag_);
}

void AccumulationWindow::round_exact_sums() {
  for (std::size_t i = 0; i < params_.size(); ++i)
    exact_[i].round_to(params_[i].grad());
  exact_loss_.round_to(loss_sum_);
  loss_sum_comp_.zero_();
}

float AccumulationWindow::loss_scale() const {
  return loss_scale_.to_vector()[0];
}

WindowCounts AccumulationWindow::counts() const {
  return read_window_counts(counts_);
}

AccumulationWindow::StepInputs AccumulationWindow::begin_step() {
  check_not_broken("step");
  GA_CHECK(open_, "step: this window was already stepped; call zero_grad() to open the next one");
  // A distributed rank may hold nothing: the group's count decides (reduce_across_ranks).
  GA_CHECK(across_ranks_ || (submitted_ > 0 && submitted_samples_ > 0),
           "step: the window holds no samples ("
               << submitted_ << " micro-batches submitted): there is nothing to average");
  const bool exact = options_.compensation() == Compensation::Exact;
  // An exact window's skip flag already holds its non-finite addends (never added): kept.
  if (!exact) skip_flag_.clear();
  if (across_ranks_) reduce_across_ranks();
  if (exact) round_exact_sums();
  const bool skip_step = options_.overflow() == OverflowPolicy::SkipStep;
  if (skip_step) {
    // The window's loss too: an infinite target gives finite (sign) gradients and an infinite
    // loss, and must not be applied either. Same flag, so still one read per step.
    std::vector<const Tensor*> checked;
    for (Variable& p : params_)
      checked.push_back(&p.grad());
    checked.push_back(&loss_sum_);
    check_finite(checked, skip_flag_);
  }
  WindowDivisor divisor = WindowDivisor::One;
  if (options_.normalization() == Normalization::MicroBatch) {
    divisor = WindowDivisor::MicroBatches;
  } else if (reduction_ == Reduction::Mean) {
    divisor = WindowDivisor::Elements;
  }
  // Skip-step keeps scaled sums: the step unscales them. Drop-micro-batch unscaled each one.
  const bool unscale = skip_step && options_.loss_scaling().kind != LossScaling::Kind::None;
  window_grad_scale(counts_, divisor, unscale ? &loss_scale_ : nullptr, grad_scale_, skip_flag_);
  return {&grad_scale_, &skip_flag_};
}

StepReport AccumulationWindow::end_step() {
  const bool skip_step = options_.overflow() == OverflowPolicy::SkipStep;
  const WindowRecordArgs record{&step_record_, &loss_sum_, &loss_sum_comp_, &skip_flag_};
  window_end_step(counts_, skip_step ? &skip_flag_ : nullptr, loss_scale_, inv_loss_scale_, rule(),
                  &record);
  open_ = false;
  // The one host read of the step.
  const WindowStepRecord rec = read_window_step_record(step_record_);
  host_loss_scale_ = rec.loss_scale;
  const WindowCounts& c = rec.counts;
  StepReport r;
  r.applied = rec.skipped == 0u;
  r.micro_batches = static_cast<std::int64_t>(c.micro_batches);
  r.micro_batches_dropped = static_cast<std::int64_t>(c.dropped);
  r.samples = static_cast<std::int64_t>(c.samples);
  r.elements = static_cast<std::int64_t>(c.elements);
  r.loss_scale = rec.loss_scale;
  r.loss_sum = static_cast<double>(rec.loss_sum) + static_cast<double>(rec.loss_sum_comp);
  r.loss = reduction_ == Reduction::Mean && c.elements > 0
               ? r.loss_sum / static_cast<double>(c.elements)
               : r.loss_sum;
  return r;
}

bool AccumulationWindow::contains(const Variable& v) const {
  for (const Variable& p : params_) {
    if (p.same(v)) return true;
  }
  return false;
}

const Tensor* AccumulationWindow::compensation_of(const Variable& v) const {
  if (options_.compensation() != Compensation::Kahan) return nullptr;
  for (const Variable& p : params_) {
    if (p.same(v)) return &p.grad_compensation();
  }
  return nullptr;
}

}  // namespace gradaccum::optim
