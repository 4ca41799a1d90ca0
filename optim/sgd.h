// optim::SGD: PyTorch's SGD (lr, momentum, dampening, weight decay, nesterov), one fused update
// per parameter (kernels/sgd.h). With a window, the gradient sums are divided by the window's
// true count inside the update; fp16 parameters get f32 master weights held here, the f16 model
// copy refreshed in the same pass.
//
//   optim::SGD opt(model.parameters(), optim::SGDOptions(0.1).momentum(0.9).nesterov(true));
//   StepReport r = opt.step(window);   // or opt.step() after a plain loss.backward()
#pragma once

#include <vector>

#include "autograd/variable.h"
#include "core/state_dict.h"
#include "core/tensor.h"
#include "optim/accumulation_window.h"
#include "optim/optimizer.h"

namespace gradaccum::optim {

struct SGDOptions {
  explicit SGDOptions(double lr) : lr_(lr) {}
  SGDOptions& lr(double v) {
    lr_ = v;
    return *this;
  }
  SGDOptions& momentum(double v) {
    momentum_ = v;
    return *this;
  }
  SGDOptions& dampening(double v) {
    dampening_ = v;
    return *this;
  }
  SGDOptions& weight_decay(double v) {
    weight_decay_ = v;
    return *this;
  }
  SGDOptions& nesterov(bool v) {
    nesterov_ = v;
    return *this;
  }
  double lr() const { return lr_; }
  double momentum() const { return momentum_; }
  double dampening() const { return dampening_; }
  double weight_decay() const { return weight_decay_; }
  bool nesterov() const { return nesterov_; }
  // Throws gradaccum::Error naming the first invalid option.
  void validate() const;

 private:
  double lr_;
  double momentum_ = 0.0;
  double dampening_ = 0.0;
  double weight_decay_ = 0.0;
  bool nesterov_ = false;
};

// step(window), step(), zero_grad(), parameters(), master_weight(i) and
// reset_master_from_parameters() are optim::Optimizer's (optim/optimizer.h).
class SGD : public Optimizer {
 public:
  // Throws on invalid options, an empty or duplicated parameter list, parameters that do not
  // require grad or lie on different devices.
  SGD(std::vector<Variable> params, SGDOptions options);

  const SGDOptions& options() const { return options_; }
  void set_lr(double lr);

  // Everything a bit-identical continuation needs (PyTorch's optimizer.state_dict()): the
  // options, whether the first step is still to come, the momentum buffers and the f32 master
  // weights of f16 parameters (host copies). load_state_dict restores all of it, options
  // included, after checking that the state is for parameters of the same shapes and dtypes; a
  // failed load changes nothing.
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& state) override;

 private:
  void update(const Tensor& grad_scale, const NonFiniteFlag* skip,
              const AccumulationWindow* window) override;
  void step_applied() override { first_step_ = false; }

  SGDOptions options_;
  std::vector<Tensor> momentum_;  // momentum buffers (undefined without momentum)
  bool first_step_ = true;
};

}  // namespace gradaccum::optim
