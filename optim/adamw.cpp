#include "optim/adamw.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kernels/adamw.h"

namespace gradaccum::optim {

void AdamWOptions::validate() const {
  GA_CHECK(std::isfinite(lr_) && lr_ >= 0.0,
           "AdamW: invalid learning rate " << lr_ << " (expected a finite lr >= 0)");
  GA_CHECK(std::isfinite(eps_) && eps_ >= 0.0,
           "AdamW: invalid eps " << eps_ << " (expected a finite eps >= 0)");
  GA_CHECK(beta1_ >= 0.0 && beta1_ < 1.0,
           "AdamW: invalid beta1 (betas[0]) " << beta1_ << " (expected 0 <= beta1 < 1)");
  GA_CHECK(beta2_ >= 0.0 && beta2_ < 1.0,
           "AdamW: invalid beta2 (betas[1]) " << beta2_ << " (expected 0 <= beta2 < 1)");
  GA_CHECK(
      std::isfinite(weight_decay_) && weight_decay_ >= 0.0,
      "AdamW: invalid weight_decay " << weight_decay_ << " (expected a finite weight_decay >= 0)");
}

AdamW::AdamW(std::vector<Variable> params, AdamWOptions options)
    : Optimizer("AdamW", std::move(params)), options_(options) {
  options_.validate();
  exp_avg_.resize(size());
  exp_avg_sq_.resize(size());
  max_exp_avg_sq_.resize(size());
  for (std::size_t i = 0; i < size(); ++i) {
    const Shape& shape = parameters()[i].shape();
    exp_avg_[i] = Tensor::zeros(shape, DType::f32, device());
    exp_avg_sq_[i] = Tensor::zeros(shape, DType::f32, device());
    if (options_.amsgrad()) max_exp_avg_sq_[i] = Tensor::zeros(shape, DType::f32, device());
  }
}

StateDict AdamW::state_dict() const {
  StateDict s;
  s.set_text("optimizer", "AdamW");
  s.set_number("lr", options_.lr());
  s.set_number("beta1", options_.beta1());
  s.set_number("beta2", options_.beta2());
  s.set_number("eps", options_.eps());
  s.set_number("weight_decay", options_.weight_decay());
  s.set_text("amsgrad", options_.amsgrad() ? "1" : "0");
  s.set_text("step", std::to_string(step_));
  save_parameters(s);
  for (std::size_t i = 0; i < size(); ++i) {
    const std::string n = std::to_string(i);
    s.set_tensor("exp_avg." + n, exp_avg_[i]);
    s.set_tensor("exp_avg_sq." + n, exp_avg_sq_[i]);
    if (max_exp_avg_sq_[i].defined()) s.set_tensor("max_exp_avg_sq." + n, max_exp_avg_sq_[i]);
  }
  return s;
}

void AdamW::load_state_dict(const StateDict& s) {
  // Everything is read and checked first: a failed load leaves the optimizer as it was.
  GA_CHECK(s.has_text("optimizer") && s.text("optimizer") == "AdamW",
           "AdamW::load_state_dict: the state is not an AdamW optimizer's (its 'optimizer' is '"
               << (s.has_text("optimizer") ? s.text("optimizer") : std::string("(none)")) << "')");
  AdamWOptions o(s.number("lr"));
  o.betas(s.number("beta1"), s.number("beta2"))
      .eps(s.number("eps"))
      .weight_decay(s.number("weight_decay"))
      .amsgrad(s.integer("amsgrad") != 0);
  o.validate();
  const std::int64_t step = s.integer("step");
  GA_CHECK(step >= 0, "AdamW::load_state_dict: invalid step count " << step << " (expected >= 0)");
  std::vector<Tensor> master = read_masters(s);
  const std::size_t n = size();
  std::vector<Tensor> exp_avg(n), exp_avg_sq(n), max_exp_avg_sq(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    exp_avg[i] = take(s, "exp_avg." + k, i, true);
    exp_avg_sq[i] = take(s, "exp_avg_sq." + k, i, true);
    max_exp_avg_sq[i] = take(s, "max_exp_avg_sq." + k, i, o.amsgrad());
  }
  options_ = o;
  step_ = step;
  set_masters(std::move(master));
  exp_avg_ = std::move(exp_avg);
  exp_avg_sq_ = std::move(exp_avg_sq);
  max_exp_avg_sq_ = std::move(max_exp_avg_sq);
}

void AdamW::set_lr(double lr) {
  set_lr_of(options_, lr);
}

void AdamW::update(const Tensor& grad_scale, const NonFiniteFlag* skip,
                   const AccumulationWindow* window) {
  const AdamWOptions& o = options_;
  AdamwHyper h{o.lr(), o.beta1(), o.beta2(), o.eps(), o.weight_decay(), o.amsgrad(), 0};
  h.step = step_ + 1;  // PyTorch counts the step (step_t += 1) before the update
  const auto own = [this](std::size_t i, AdamwUpdateArgs& a) {
    a.exp_avg = &exp_avg_[i];
    a.exp_avg_sq = &exp_avg_sq_[i];
    a.max_exp_avg_sq = max_exp_avg_sq_[i].defined() ? &max_exp_avg_sq_[i] : nullptr;
  };
  // One launch per eight parameters on CUDA.
  adamw_update(updates<AdamwUpdateArgs>(grad_scale, skip, window, own), h);
}

}  // namespace gradaccum::optim
