// optim::Optimizer: what optim::SGD and optim::AdamW share. The parameter list (checked once),
// the f32 master weights of f16 parameters, the window step and the plain step around the
// optimizer's own fused update, and the per-parameter entries of their state dicts.
//
//   StepReport r = opt.step(window);   // or opt.step() after a plain loss.backward()
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "core/state_dict.h"
#include "core/tensor.h"
#include "kernels/nonfinite_flag.h"
#include "optim/accumulation_window.h"

namespace gradaccum::optim {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(Optimizer&&) = default;
  Optimizer& operator=(Optimizer&&) = default;

  // The step of the window's samples; see AccumulationWindow. Throws when the window holds no
  // sample or does not hold every parameter of this optimizer. A step the window skips
  // (overflow, every micro-batch dropped) changes nothing.
  StepReport step(AccumulationWindow& window);
  // PyTorch's optimizer.step(): the gradients as they are (after loss.backward()).
  void step();
  // Zeroes the gradients (for the plain step()).
  void zero_grad();

  const std::vector<Variable>& parameters() const { return params_; }
  // The f32 master copy of parameter i (the parameter itself when it is f32).
  const Tensor& master_weight(std::size_t i) const;
  // Re-reads the master weights from the parameters (after loading a model, say).
  void reset_master_from_parameters();

  // Everything a bit-identical continuation needs (PyTorch's optimizer.state_dict()), as host
  // copies; load_state_dict restores all of it after checking that the state is for parameters
  // of the same shapes and dtypes; a failed load changes nothing.
  virtual StateDict state_dict() const = 0;
  virtual void load_state_dict(const StateDict& state) = 0;

 protected:
  // `who` names the optimizer in messages ("SGD"). Throws on an empty or duplicated parameter
  // list, parameters that do not require grad or lie on different devices.
  Optimizer(const char* who, std::vector<Variable> params);

  // One fused update of the parameters that have a gradient: grad_scale multiplies the
  // gradients (on the device), skip (when given and raised) makes it change nothing; `window`
  // is null for the plain step.
  virtual void update(const Tensor& grad_scale, const NonFiniteFlag* skip,
                      const AccumulationWindow* window) = 0;
  // Called after each applied step (not after a skipped one).
  virtual void step_applied() = 0;

  // Sets options.lr(lr) once the options with it validate (a bad lr throws, changing nothing).
  template <typename Options>
  static void set_lr_of(Options& options, double lr) {
    Options o = options;
    o.lr(lr);
    o.validate();
    options = o;
  }

  std::size_t size() const { return params_.size(); }
  Device device() const { return params_.front().device(); }

  // The updates of the parameters a gradient reached (PyTorch skips the others too), each with
  // the arguments every optimizer passes (Args: SgdUpdateArgs, AdamwUpdateArgs): the f32
  // weights it writes (the master, or the parameter itself), its gradient and compensation, the
  // scale, the f16 copy, the skip flag; own(i, args) adds the optimizer's own. Throws when a
  // parameter changed device or dtype since the optimizer was made.
  template <typename Args, typename Own>
  std::vector<Args> updates(const Tensor& grad_scale, const NonFiniteFlag* skip,
                            const AccumulationWindow* window, const Own& own) {
    std::vector<Args> out;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Variable& p = params_[i];
      check_unchanged(i, grad_scale.device());
      if (!p.grad().defined()) continue;
      Args a;
      a.param = master_[i].defined() ? &master_[i] : &p.value();
      a.grad = &p.grad();
      a.grad_comp = window ? window->compensation_of(p) : nullptr;
      if (a.grad_comp != nullptr && !a.grad_comp->defined()) a.grad_comp = nullptr;
      a.grad_scale = &grad_scale;
      a.param_f16 = master_[i].defined() ? &p.value() : nullptr;
      a.skip_if = skip;
      own(i, a);
      out.push_back(a);
    }
    return out;
  }

  // ---- state dicts ----
  // Writes "parameters", "parameter.<i>" (shape and dtype) and "master.<i>" (f16 parameters).
  void save_parameters(StateDict& s) const;
  // The masters of a state, after checking that it is for parameters of the same count, shapes
  // and dtypes (throws naming what differs); nothing changes until set_masters.
  std::vector<Tensor> read_masters(const StateDict& s) const;
  void set_masters(std::vector<Tensor> masters) { master_ = std::move(masters); }
  // The f32 tensor `key` of parameter i (of its shape), moved to the parameters' device; it must
  // be in the state exactly when `wanted` (undefined when not).
  Tensor take(const StateDict& s, const std::string& key, std::size_t i, bool wanted) const;

 private:
  void check_unchanged(std::size_t i, Device device) const;

  const char* who_;
  std::vector<Variable> params_;
  std::vector<Tensor> master_;  // f32 masters of f16 parameters (undefined for f32 ones)
  Tensor unit_scale_;           // f32 [1] = 1, for the plain step()
};

}  // namespace gradaccum::optim
