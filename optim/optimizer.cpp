#include "optim/optimizer.h"

#include <string>
#include <utility>
#include <vector>

namespace gradaccum::optim {
namespace {

std::string parameter_text(const Variable& p) {
  return p.shape().str() + " " + dtype_name(p.dtype());
}

}  // namespace

Optimizer::Optimizer(const char* who, std::vector<Variable> params)
    : who_(who), params_(std::move(params)) {
  GA_CHECK(!params_.empty(), who_ << ": the parameter list is empty");
  const Device device = params_.front().device();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Variable& p = params_[i];
    GA_CHECK(p.defined() && p.is_leaf() && p.requires_grad(),
             who_ << ": parameter " << i << " is not a leaf Variable that requires grad");
    GA_CHECK(p.device() == device, who_ << ": parameters on different devices ('"
                                        << params_.front().name() << "' and '" << p.name() << "')");
    for (std::size_t j = 0; j < i; ++j) {
      GA_CHECK(!params_[j].same(p), who_ << ": parameter '" << p.name() << "' listed twice");
    }
  }
  master_.resize(params_.size());
  reset_master_from_parameters();
  unit_scale_ = Tensor::full({1}, 1.0f, DType::f32, device);
}

void Optimizer::reset_master_from_parameters() {
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& v = params_[i].value();
    master_[i] = v.dtype() == DType::f32 ? Tensor() : v.to(DType::f32);
  }
}

const Tensor& Optimizer::master_weight(std::size_t i) const {
  GA_CHECK(i < params_.size(), "master_weight: index " << i << " out of range");
  return master_[i].defined() ? master_[i] : params_[i].value();
}

void Optimizer::zero_grad() {
  for (Variable& p : params_)
    p.zero_grad();
}

StepReport Optimizer::step(AccumulationWindow& window) {
  for (const Variable& p : params_) {
    GA_CHECK(window.contains(p),
             who_ << "::step(window): parameter '" << p.name() << "' is not in the window");
  }
  AccumulationWindow::StepInputs in = window.begin_step();
  update(*in.grad_scale, in.skip, &window);
  StepReport r = window.end_step();
  if (r.applied) step_applied();
  return r;
}

void Optimizer::step() {
  update(unit_scale_, nullptr, nullptr);
  step_applied();
}

void Optimizer::check_unchanged(std::size_t i, Device device) const {
  const Variable& p = params_[i];
  GA_CHECK(p.device() == device, who_ << ": parameter '" << p.name() << "' moved to "
                                      << device_name(p.device())
                                      << " after the optimizer was made");
  GA_CHECK(p.dtype() == DType::f32 || master_[i].defined(),
           who_ << ": parameter '" << p.name()
                << "' became f16 after the optimizer was made; "
                   "make the optimizer after model.to(dtype)");
}

void Optimizer::save_parameters(StateDict& s) const {
  s.set_text("parameters", std::to_string(params_.size()));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string n = std::to_string(i);
    s.set_text("parameter." + n, parameter_text(params_[i]));
    if (master_[i].defined()) s.set_tensor("master." + n, master_[i]);
  }
}

std::vector<Tensor> Optimizer::read_masters(const StateDict& s) const {
  GA_CHECK(s.integer("parameters") == static_cast<std::int64_t>(params_.size()),
           who_ << "::load_state_dict: the state is for " << s.text("parameters")
                << " parameters, this optimizer has " << params_.size());
  std::vector<Tensor> master(params_.size());
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const std::string n = std::to_string(i);
    const Variable& p = params_[i];
    GA_CHECK(s.text("parameter." + n) == parameter_text(p),
             who_ << "::load_state_dict: parameter " << i << " is " << s.text("parameter." + n)
                  << " in the state, " << parameter_text(p)
                  << " here; expected the same shape and dtype");
    master[i] = take(s, "master." + n, i, p.dtype() != DType::f32);
  }
  return master;
}

Tensor Optimizer::take(const StateDict& s, const std::string& key, std::size_t i,
                       bool wanted) const {
  GA_CHECK(s.has_tensor(key) == wanted,
           who_ << "::load_state_dict: " << (wanted ? "no tensor '" : "an unexpected tensor '")
                << key << "' for parameter " << i);
  if (!wanted) return Tensor();
  const Tensor& t = s.tensor(key);
  const Variable& p = params_[i];
  GA_CHECK(t.dtype() == DType::f32 && t.shape() == p.shape(),
           who_ << "::load_state_dict: '" << key << "' is " << t.str() << "; expected f32 "
                << p.shape().str());
  return t.to(device());
}

}  // namespace gradaccum::optim
