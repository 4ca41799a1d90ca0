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

class SGD {
 public:
  // Throws on invalid options, an empty or duplicated parameter list, parameters that do not
  // require grad or lie on different devices.
  SGD(std::vector<Variable> params, SGDOptions options);

  // The step of the window's samples; see AccumulationWindow. Throws when the window holds no
  // sample or does not hold every parameter of this optimizer.
  StepReport step(AccumulationWindow& window);
  // PyTorch's optimizer.step(): the gradients as they are (after loss.backward()).
  void step();
  // Zeroes the gradients (for the plain step()).
  void zero_grad();

  const SGDOptions& options() const { return options_; }
  void set_lr(double lr);
  const std::vector<Variable>& parameters() const { return params_; }
  // The f32 master copy of parameter i (the parameter itself when it is f32).
  const Tensor& master_weight(std::size_t i) const;
  // Re-reads the master weights from the parameters (after loading a model, say).
  void reset_master_from_parameters();

  // Everything a bit-identical continuation needs (PyTorch's optimizer.state_dict()): the
  // options, whether the first step is still to come, the momentum buffers and the f32 master
  // weights of f16 parameters (host copies). load_state_dict restores all of it, options
  // included, after checking that the state is for parameters of the same shapes and dtypes; a
  // failed load changes nothing.
  StateDict state_dict() const;
  void load_state_dict(const StateDict& state);

 private:
  void update(const Tensor& grad_scale, const NonFiniteFlag* skip,
              const AccumulationWindow* window);

  std::vector<Variable> params_;
  SGDOptions options_;
  std::vector<Tensor> master_;    // f32 masters of f16 parameters (undefined for f32 ones)
  std::vector<Tensor> momentum_;  // momentum buffers (undefined without momentum)
  bool first_step_ = true;
  Tensor unit_scale_;  // f32 [1] = 1, for the plain step()
};

}  // namespace gradaccum::optim
