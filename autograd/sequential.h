// nn::Sequential: children applied in order, named like PyTorch's nn.Sequential ("0", "1", …)
// unless named explicitly:
//   Sequential({{"fc1", Linear(4, 8)}, {"relu", ReLU()}, {"fc2", Linear(8, 2)}})
//   → parameters fc1.weight, fc1.bias, fc2.weight, fc2.bias.
// A Linear directly followed by a ReLU runs as one fused kernel (set_fuse_relu(false) to keep
// them apart; the results are the same).
#pragma once

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "autograd/module.h"

namespace gradaccum::nn {

// One child of a Sequential, with an optional name.
struct SequentialItem {
  template <typename M, typename = std::enable_if_t<std::is_base_of_v<Module, std::decay_t<M>>>>
  SequentialItem(M&& m)  // NOLINT(google-explicit-constructor): list syntax
      : module(std::make_shared<std::decay_t<M>>(std::forward<M>(m))) {}
  template <typename M, typename = std::enable_if_t<std::is_base_of_v<Module, std::decay_t<M>>>>
  SequentialItem(std::string n, M&& m)
      : name(std::move(n)), module(std::make_shared<std::decay_t<M>>(std::forward<M>(m))) {}
  SequentialItem(std::shared_ptr<Module> m) : module(std::move(m)) {}  // NOLINT
  SequentialItem(std::string n, std::shared_ptr<Module> m)
      : name(std::move(n)), module(std::move(m)) {}

  std::string name;  // empty: the child's index
  std::shared_ptr<Module> module;
};

class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<SequentialItem> items);
  void push_back(SequentialItem item);

  Variable forward(const Variable& x) override;
  std::string type_name() const override { return "Sequential"; }
  std::size_t size() const { return named_children().size(); }
  void set_fuse_relu(bool fuse) { fuse_relu_ = fuse; }

 private:
  bool fuse_relu_ = true;
};

}  // namespace gradaccum::nn
