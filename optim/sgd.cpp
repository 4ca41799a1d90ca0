#include "optim/sgd.h"

#include <vector>

#include <cmath>
#include <string>

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
    : params_(std::move(params)), options_(options) {
  options_.validate();
  GA_CHECK(!params_.empty(), "SGD: the parameter list is empty");
  const Device device = params_.front().device();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Variable& p = params_[i];
    GA_CHECK(p.defined() && p.is_leaf() && p.requires_grad(),
             "SGD: parameter " << i << " is not a leaf Variable that requires grad");
    GA_CHECK(p.device() == device, "SGD: parameters on different devices ('"
                                       << params_.front().name() << "' and '" << p.name() << "')");
    for (std::size_t j = 0; j < i; ++j) {
      GA_CHECK(!params_[j].same(p), "SGD: parameter '" << p.name() << "' listed twice");
    }
  }
  master_.resize(params_.size());
  momentum_.resize(params_.size());
  reset_master_from_parameters();
  if (options_.momentum() != 0.0) {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      momentum_[i] = Tensor::zeros(params_[i].shape(), DType::f32, device);
    }
  }
  unit_scale_ = Tensor::full({1}, 1.0f, DType::f32, device);
}

void SGD::reset_master_from_parameters() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& v = params_[i].value();
    master_[i] = v.dtype() == DType::f32 ? Tensor() : v.to(DType::f32);
  }
}

const Tensor& SGD::master_weight(std::size_t i) const {
  GA_CHECK(i < params_.size(), "master_weight: index " << i << " out of range");
  return master_[i].defined() ? master_[i] : params_[i].value();
}

namespace {

std::string parameter_text(const Variable& p) {
  return p.shape().str() + " " + dtype_name(p.dtype());
}

}  // namespace

StateDict SGD::state_dict() const {
  StateDict s;
  s.set_number("lr", options_.lr());
  s.set_number("momentum", options_.momentum());
  s.set_number("dampening", options_.dampening());
  s.set_number("weight_decay", options_.weight_decay());
  s.set_text("nesterov", options_.nesterov() ? "1" : "0");
  s.set_text("first_step", first_step_ ? "1" : "0");
  s.set_text("parameters", std::to_string(params_.size()));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string n = std::to_string(i);
    s.set_text("parameter." + n, parameter_text(params_[i]));
    if (master_[i].defined()) s.set_tensor("master." + n, master_[i]);
    if (momentum_[i].defined()) s.set_tensor("momentum." + n, momentum_[i]);
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
  GA_CHECK(s.integer("parameters") == static_cast<std::int64_t>(params_.size()),
           "SGD::load_state_dict: the state is for "
               << s.text("parameters") << " parameters, this optimizer has " << params_.size());
  const Device device = params_.front().device();
  std::vector<Tensor> master(params_.size()), momentum(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string n = std::to_string(i);
    const Variable& p = params_[i];
    GA_CHECK(s.text("parameter." + n) == parameter_text(p),
             "SGD::load_state_dict: parameter " << i << " is " << s.text("parameter." + n)
                                                << " in the state, " << parameter_text(p)
                                                << " here; expected the same shape and dtype");
    auto take = [&](const std::string& key, bool wanted, std::vector<Tensor>& into) {
      GA_CHECK(s.has_tensor(key) == wanted,
               "SGD::load_state_dict: " << (wanted ? "no tensor '" : "an unexpected tensor '")
                                        << key << "' for parameter " << i);
      if (!wanted) return;
      const Tensor& t = s.tensor(key);
      GA_CHECK(t.dtype() == DType::f32 && t.shape() == p.shape(),
               "SGD::load_state_dict: '" << key << "' is " << t.str() << "; expected f32 "
                                         << p.shape().str());
      into[i] = t.to(device);
    };
    take("master." + n, p.dtype() != DType::f32, master);
    take("momentum." + n, o.momentum() != 0.0, momentum);
  }
  options_ = o;
  first_step_ = first_step;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    master_[i] = std::move(master[i]);
    momentum_[i] = std::move(momentum[i]);
  }
}

void SGD::set_lr(double lr) {
  SGDOptions o = options_;
  o.lr(lr);
  o.validate();
  options_ = o;
}

void SGD::zero_grad() {
  for (Variable& p : params_)
    p.zero_grad();
}

void SGD::update(const Tensor& grad_scale, const NonFiniteFlag* skip,
                 const AccumulationWindow* window) {
  SgdHyper h;
  h.lr = static_cast<float>(options_.lr());
  h.momentum = static_cast<float>(options_.momentum());
  h.dampening = static_cast<float>(options_.dampening());
  h.weight_decay = static_cast<float>(options_.weight_decay());
  h.nesterov = options_.nesterov();
  std::vector<SgdUpdateArgs> updates;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Variable& p = params_[i];
    GA_CHECK(p.device() == grad_scale.device(),
             "SGD: parameter '" << p.name() << "' moved to " << device_name(p.device())
                                << " after the optimizer was made");
    GA_CHECK(p.dtype() == DType::f32 || master_[i].defined(),
             "SGD: parameter '" << p.name()
                                << "' became f16 after the optimizer was made; "
                                   "make the optimizer after model.to(dtype)");
    if (!p.grad().defined()) continue;  // no gradient reached it (PyTorch skips it too)
    SgdUpdateArgs a;
    a.param = master_[i].defined() ? &master_[i] : &p.value();
    a.grad = &p.grad();
    a.grad_comp = window ? window->compensation_of(p) : nullptr;
    if (a.grad_comp != nullptr && !a.grad_comp->defined()) a.grad_comp = nullptr;
    a.grad_scale = &grad_scale;
    a.momentum_buf = momentum_[i].defined() ? &momentum_[i] : nullptr;
    a.first_step = first_step_;
    a.param_f16 = master_[i].defined() ? &p.value() : nullptr;
    a.skip_if = skip;
    updates.push_back(a);
  }
  sgd_update(updates, h);  // one launch on CUDA
}

StepReport SGD::step(AccumulationWindow& window) {
  for (const Variable& p : params_) {
    GA_CHECK(window.contains(p),
             "SGD::step(window): parameter '" << p.name() << "' is not in the window");
  }
  AccumulationWindow::StepInputs in = window.begin_step();
  update(*in.grad_scale, in.skip, &window);
  StepReport r = window.end_step();
  if (r.applied) first_step_ = false;
  return r;
}

void SGD::step() {
  update(unit_scale_, nullptr, nullptr);
  first_step_ = false;
}

}  // namespace gradaccum::optim
