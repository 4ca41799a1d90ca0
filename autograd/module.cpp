#include "autograd/module.h"

#include <atomic>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/npy.h"

namespace gradaccum::nn {
namespace {

std::atomic<std::uint64_t> g_seed{0x5eed0000ull};

}  // namespace

void manual_seed(std::uint64_t seed) {
  g_seed.store(seed);
}
std::uint64_t next_default_seed() {
  return g_seed.fetch_add(1);
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& [name, v] : named_parameters())
    out.push_back(v);
  return out;
}

std::vector<std::pair<std::string, Variable>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Variable>> out;
  collect("", out);
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor*>> out;
  collect_buffers("", out);
  return out;
}

void Module::collect_buffers(const std::string& prefix,
                             std::vector<std::pair<std::string, Tensor*>>& out) const {
  for (const auto& [name, t] : buffers_)
    out.emplace_back(prefix + name, t.get());
  for (const auto& [name, m] : children_)
    m->collect_buffers(prefix + name + ".", out);
}

Module& Module::train(bool on) {
  training_ = on;
  for (auto& [name, m] : children_)
    m->train(on);
  return *this;
}

void Module::collect(const std::string& prefix,
                     std::vector<std::pair<std::string, Variable>>& out) const {
  for (const auto& [name, v] : params_)
    out.emplace_back(prefix + name, v);
  for (const auto& [name, m] : children_)
    m->collect(prefix + name + ".", out);
}

namespace {

// All or nothing: every parameter is converted first (an allocation may fail: then no parameter
// has changed), and only then are the values replaced, which cannot fail.
template <typename Convert>
void convert_all(std::vector<std::pair<std::string, Variable>> params, const Convert& convert) {
  std::vector<Tensor> converted;
  converted.reserve(params.size());
  for (auto& [name, v] : params)
    converted.push_back(convert(v.value()));
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (converted[i].defined()) params[i].second.replace_value(std::move(converted[i]));
  }
}

}  // namespace

Module& Module::to(Device device) {
  // The buffers are converted first: should one fail, nothing has changed yet.
  auto buffers = named_buffers();
  std::vector<Tensor> moved;
  for (auto& [name, t] : buffers)
    moved.push_back(t->device() == device ? Tensor() : t->to(device));
  convert_all(named_parameters(),
              [device](const Tensor& t) { return t.device() == device ? Tensor() : t.to(device); });
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    if (moved[i].defined()) *buffers[i].second = std::move(moved[i]);
  }
  return *this;
}

Module& Module::to(DType dtype) {
  convert_all(named_parameters(),
              [dtype](const Tensor& t) { return t.dtype() == dtype ? Tensor() : t.to(dtype); });
  return *this;
}

void Module::zero_grad() {
  for (auto& [name, v] : named_parameters())
    v.zero_grad();
}

Device Module::device() const {
  auto p = named_parameters();
  return p.empty() ? Device::CPU : p.front().second.device();
}

DType Module::dtype() const {
  auto p = named_parameters();
  return p.empty() ? DType::f32 : p.front().second.dtype();
}

void Module::set_gemm_config(const GemmConfig& config) {
  gemm_config_ = config;
  for (auto& [name, m] : children_)
    m->set_gemm_config(config);
}

void Module::save(const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  GA_CHECK(!ec, "save: cannot create directory '" << dir << "': " << ec.message());
  for (const auto& [name, v] : named_parameters()) {
    save_npy((std::filesystem::path(dir) / (name + ".npy")).string(), v.value());
  }
  for (const auto& [name, t] : named_buffers())
    save_npy((std::filesystem::path(dir) / (name + ".npy")).string(), *t);
}

void Module::load(const std::string& dir) {
  // Every file is read and checked before the first parameter changes: a failed load leaves
  // the model as it was.
  std::vector<std::pair<std::string, Tensor*>> targets;
  for (auto& [name, v] : named_parameters())
    targets.emplace_back(name, &v.value());
  for (auto& [name, t] : named_buffers())
    targets.emplace_back(name, t);
  std::vector<Tensor> loaded;
  loaded.reserve(targets.size());
  for (auto& [name, target] : targets) {
    const std::string path = (std::filesystem::path(dir) / (name + ".npy")).string();
    Tensor t = load_npy(path);
    GA_CHECK(t.shape() == target->shape(), "load: '" << path << "' holds " << t.str() << ", '"
                                                     << name << "' is " << target->str());
    if (t.dtype() != target->dtype()) t = t.to(target->dtype());
    loaded.push_back(std::move(t));
  }
  for (std::size_t i = 0; i < targets.size(); ++i)
    targets[i].second->copy_from(loaded[i]);
}

StateDict Module::state_dict() const {
  StateDict out;
  for (const auto& [name, v] : named_parameters())
    out.set_tensor(name, v.value());
  for (const auto& [name, t] : named_buffers())
    out.set_tensor(name, *t);
  return out;
}

void Module::load_state_dict(const StateDict& state) {
  std::vector<std::pair<std::string, Tensor*>> targets;
  for (auto& [name, v] : named_parameters())
    targets.emplace_back(name, &v.value());
  for (auto& [name, t] : named_buffers())
    targets.emplace_back(name, t);
  for (const auto& [name, target] : targets) {
    GA_CHECK(state.has_tensor(name),
             "load_state_dict: no tensor for '" << name << "'; expected one");
    const Tensor& t = state.tensor(name);
    GA_CHECK(t.shape() == target->shape() && t.dtype() == target->dtype(),
             "load_state_dict: '" << name << "' is " << t.str() << " in the state, the model's is "
                                  << target->str() << "; expected the same shape and dtype");
  }
  GA_CHECK(state.tensors().size() == targets.size(),
           "load_state_dict: the state holds " << state.tensors().size() << " tensors, the model "
                                               << targets.size() << " parameters and buffers");
  for (auto& [name, target] : targets)
    target->copy_from(state.tensor(name));
}

void Module::check_new_name(const char* what, const std::string& name) const {
  GA_CHECK(!name.empty() && name.find('.') == std::string::npos,
           what << ": invalid name '" << name << "'");
  for (const auto& p : params_)
    GA_CHECK(p.first != name, what << ": '" << name << "' registered twice");
  for (const auto& b : buffers_)
    GA_CHECK(b.first != name, what << ": '" << name << "' registered twice");
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name("register_buffer", name);
  buffers_.emplace_back(name, std::make_shared<Tensor>(std::move(value)));
  return *buffers_.back().second;
}

Variable Module::register_parameter(const std::string& name, Tensor value) {
  check_new_name("register_parameter", name);
  Variable v(std::move(value), /*requires_grad=*/true, name);
  params_.emplace_back(name, v);
  return v;
}

void Module::register_module(const std::string& name, std::shared_ptr<Module> module) {
  GA_CHECK(module != nullptr, "register_module: '" << name << "' is null");
  GA_CHECK(!name.empty() && name.find('.') == std::string::npos,
           "register_module: invalid name '" << name << "'");
  for (const auto& c : children_) {
    GA_CHECK(c.first != name, "register_module: '" << name << "' registered twice");
  }
  children_.emplace_back(name, std::move(module));
}

}  // namespace gradaccum::nn
