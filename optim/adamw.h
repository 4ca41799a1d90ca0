// optim::AdamW: PyTorch's AdamW (lr, betas, eps, decoupled weight decay, amsgrad), one fused
// update per parameter (kernels/adamw.h). With a window, the gradient sums are divided by the
// window's true count inside the update; fp16 parameters get f32 master weights held here, the
// f16 model copy refreshed in the same pass.
//
//   optim::AdamW opt(model.parameters(), optim::AdamWOptions(1e-3).betas(0.9, 0.95));
//   StepReport r = opt.step(window);   // or opt.step() after a plain loss.backward()
//
// The step count is the optimizer's (PyTorch keeps one per parameter, equal to this one unless
// a parameter goes without a gradient on some step: here it still counts). A step the window
// skips (overflow, every micro-batch dropped) changes nothing, the count included, as a
// GradScaler-skipped optimizer.step() in PyTorch. PyTorch counts in a float32 tensor, exact to
// 2^24 steps; the count here is an integer, and the two agree to there.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/variable.h"
#include "core/state_dict.h"
#include "core/tensor.h"
#include "optim/accumulation_window.h"
#include "optim/optimizer.h"

namespace gradaccum::optim {

// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2, no amsgrad.
struct AdamWOptions {
  explicit AdamWOptions(double lr = 1e-3) : lr_(lr) {}
  AdamWOptions& lr(double v) {
    lr_ = v;
    return *this;
  }
  AdamWOptions& betas(double beta1, double beta2) {
    beta1_ = beta1;
    beta2_ = beta2;
    return *this;
  }
  AdamWOptions& eps(double v) {
    eps_ = v;
    return *this;
  }
  AdamWOptions& weight_decay(double v) {
    weight_decay_ = v;
    return *this;
  }
  AdamWOptions& amsgrad(bool v) {
    amsgrad_ = v;
    return *this;
  }
  double lr() const { return lr_; }
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }
  bool amsgrad() const { return amsgrad_; }
  // Throws gradaccum::Error naming the first invalid option and its valid range.
  void validate() const;

 private:
  double lr_;
  double beta1_ = 0.9;
  double beta2_ = 0.999;
  double eps_ = 1e-8;
  double weight_decay_ = 1e-2;
  bool amsgrad_ = false;
};

// step(window), step(), zero_grad(), parameters(), master_weight(i) and
// reset_master_from_parameters() are optim::Optimizer's (optim/optimizer.h).
class AdamW : public Optimizer {
 public:
  // Throws on invalid options, an empty or duplicated parameter list, parameters that do not
  // require grad or lie on different devices.
  AdamW(std::vector<Variable> params, AdamWOptions options);

  const AdamWOptions& options() const { return options_; }
  void set_lr(double lr);
  // The number of steps applied so far (PyTorch's state['step']).
  std::int64_t step_count() const { return step_; }

  // Everything a bit-identical continuation needs (PyTorch's optimizer.state_dict()): the
  // options, the step count, exp_avg, exp_avg_sq (and max_exp_avg_sq with amsgrad) and the f32
  // master weights of f16 parameters (host copies). load_state_dict restores all of it, options
  // included, after checking that the state is an AdamW's for parameters of the same shapes and
  // dtypes, with amsgrad's buffers exactly when its amsgrad option says so; a failed load
  // changes nothing.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  void update(const Tensor& grad_scale, const NonFiniteFlag* skip,
              const AccumulationWindow* window) override;
  void step_applied() override { ++step_; }  // a skipped step left everything, the count too

  AdamWOptions options_;
  std::vector<Tensor> exp_avg_;         // first moments, f32 (zeros before the first step)
  std::vector<Tensor> exp_avg_sq_;      // second moments, f32
  std::vector<Tensor> max_exp_avg_sq_;  // running max of the second moments (amsgrad only)
  std::int64_t step_ = 0;               // steps applied
};

}  // namespace gradaccum::optim
