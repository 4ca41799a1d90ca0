// Modules, shaped like PyTorch's C++ frontend: a Module owns named parameters (leaf Variables
// that require grad) and named child modules. Copying a module copies handles: the copy shares
// its parameters (as torch::nn::ModuleHolder does).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "core/dtype.h"
#include "core/state_dict.h"
#include "kernels/gemm_config.h"

namespace gradaccum::nn {

using autograd::Variable;

// Seeds the default initialisation of modules created afterwards (like torch.manual_seed):
// each module without an explicit seed takes the next seed of a process-wide sequence.
void manual_seed(std::uint64_t seed);
std::uint64_t next_default_seed();

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = default;
  Module& operator=(const Module&) = default;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;

  virtual Variable forward(const Variable& x) = 0;
  Variable operator()(const Variable& x) { return forward(x); }
  virtual std::string type_name() const = 0;

  // Training (the default) or evaluation mode, for this module and its children (PyTorch's
  // train() / eval()): BatchNorm1d normalises with the batch's statistics in training and with
  // its running statistics in evaluation.
  Module& train(bool on = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }

  // Every parameter, own first then the children's in registration order.
  std::vector<Variable> parameters() const;
  // Names joined with '.': "weight", "fc1.weight", "0.bias" (PyTorch's naming).
  std::vector<std::pair<std::string, Variable>> named_parameters() const;
  // Buffers: state that is not a parameter (BatchNorm1d's running statistics), named like the
  // parameters. They are saved and loaded with them and moved by to(Device); they stay f32
  // under to(DType).
  std::vector<std::pair<std::string, Tensor*>> named_buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }

  // Moves / converts every parameter in place (shared handles see the change). Gradients stay
  // f32 whatever the dtype. Create the optimizer after these calls. All or nothing: when a
  // conversion fails (out of device memory), no parameter has changed.
  Module& to(Device device);
  Module& to(DType dtype);
  void zero_grad();
  // The device and dtype of the first parameter (CPU / f32 without parameters).
  Device device() const;
  DType dtype() const;

  // The GEMM implementation of every linear product in this module and its children.
  void set_gemm_config(const GemmConfig& config);
  const GemmConfig& gemm_config() const { return gemm_config_; }

  // Saves every parameter and buffer as <dir>/<name>.npy (creating dir); load reads them back by
  // name, converting to the parameter's dtype and device (shapes must match).
  void save(const std::string& dir) const;
  void load(const std::string& dir);
  // The parameters and buffers by name (host copies, the model's dtype; buffers f32), and back
  // (PyTorch's state_dict): every entry is checked (present, same shape and dtype) before the
  // first value changes.
  StateDict state_dict() const;
  void load_state_dict(const StateDict& state);

 protected:
  Variable register_parameter(const std::string& name, Tensor value);
  void register_module(const std::string& name, std::shared_ptr<Module> module);
  // The buffer lives as long as any copy of this module (copies share it, as they share
  // parameters).
  Tensor& register_buffer(const std::string& name, Tensor value);

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Variable>>& out) const;
  void collect_buffers(const std::string& prefix,
                       std::vector<std::pair<std::string, Tensor*>>& out) const;
  void check_new_name(const char* what, const std::string& name) const;

  bool training_ = true;
  std::vector<std::pair<std::string, Variable>> params_;
  std::vector<std::pair<std::string, std::shared_ptr<Tensor>>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  GemmConfig gemm_config_;
};

}  // namespace gradaccum::nn
