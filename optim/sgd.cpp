#include "optim/sgd.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "kernels/sgd.h"

namespace gradaccum::optim {

void SGDOptions::validate() const {
  GA_CHECK(std::isfinite(lr_) && lr_ >= 0.0,
           "SGD: invalid learning rate " << lr_ << " (must be >= 0)");
  GA_CHECK(std::isfinite(momentum_) && momentum_ >= 0.0,
           "SGD: invalid momentum " << momentum_ << " (must be >= 0)");
  GA_CHECK(std::isfinite(dampening_), "SGD: invalid dampening " << dampening_);
  GA_CHECK(std::isfinite(weight_decay_) && weight_decay_ >= 0.0,
           "SGD: invalid weight_decay " << weight_decay_ << " (must be >= 0)");
  GA_CHECK(!nesterov_ || (momentum_ > 0.0 && dampening_ == 0.0),
           "SGD: nesterov momentum requires a momentum > 0 and zero dampening (momentum "
               << momentum_ << ", dampening " << dampening_ << ")");
}

SGD::SGD(std::vector<Variable> params, SGDOptions options)
    : Optimizer("SGD", std::move(params)), options_(options) {
  options_.validate();
  momentum_.resize(size());
  if (options_.momentum() != 0.0) {
    for (std::size_t i = 0; i < size(); ++i) {
      momentum_[i] = Tensor::zeros(parameters()[i].shape(), DType::f32, device());
    }
  }
}

StateDict SGD::state_dict() const {
  StateDict s;
  s.set_number("lr", options_.lr());
  s.set_number("momentum", options_.momentum());
  s.set_number("dampening", options_.dampening());
  s.set_number("weight_decay", options_.weight_decay());
  s.set_text("nesterov", options_.nesterov() ? "1" : "0");
  s.set_text("first_step", first_step_ ? "1" : "0");
  save_parameters(s);
  for (std::size_t i = 0; i < size(); ++i) {
    if (momentum_[i].defined()) s.set_tensor("momentum." + std::to_string(i), momentum_[i]);
  }
  return s;
}

void SGD::load_state_dict(const StateDict& s) {
  // Everything is read and checked first: a failed load leaves the optimizer as it was.
  SGDOptions o(s.number("lr"));
  o.momentum(s.number("momentum"))
      .dampening(s.number("dampening"))
      .weight_decay(s.number("weight_decay"))
      .nesterov(s.integer("nesterov") != 0);
  o.validate();
  const bool first_step = s.integer("first_step") != 0;
  std::vector<Tensor> master = read_masters(s);
  std::vector<Tensor> momentum(size());
  for (std::size_t i = 0; i < size(); ++i) {
    momentum[i] = take(s, "momentum." + std::to_string(i), i, o.momentum() != 0.0);
  }
  options_ = o;
  first_step_ = first_step;
  set_masters(std::move(master));
  momentum_ = std::move(momentum);
}

void SGD::set_lr(double lr) {
  set_lr_of(options_, lr);
}

void SGD::update(const Tensor& grad_scale, const NonFiniteFlag* skip,
                 const AccumulationWindow* window) {
  SgdHyper h;
  h.lr = static_cast<float>(options_.lr());
  h.momentum = static_cast<float>(options_.momentum());
  h.dampening = static_cast<float>(options_.dampening());
  h.weight_decay = static_cast<float>(options_.weight_decay());
  h.nesterov = options_.nesterov();
  const auto own = [this](std::size_t i, SgdUpdateArgs& a) {
    a.momentum_buf = momentum_[i].defined() ? &momentum_[i] : nullptr;
    a.first_step = first_step_;
  };
  // One launch per eight parameters on CUDA.
  sgd_update(updates<SgdUpdateArgs>(grad_scale, skip, window, own), h);
}

}  // namespace gradaccum::optim
