#include "autograd/sequential.h"

#include "autograd/linear_module.h"
#include "autograd/relu_module.h"

namespace gradaccum::nn {

Sequential::Sequential(std::initializer_list<SequentialItem> items) {
  for (const SequentialItem& item : items)
    push_back(item);
}

void Sequential::push_back(SequentialItem item) {
  std::string name = item.name.empty() ? std::to_string(size()) : item.name;
  GA_CHECK(item.module != nullptr, "Sequential::push_back: module '" << name << "' is null");
  item.module->set_gemm_config(gemm_config());
  register_module(name, std::move(item.module));
}

Variable Sequential::forward(const Variable& x) {
  const auto& children = named_children();
  GA_CHECK(!children.empty(), "Sequential::forward of an empty Sequential");
  Variable h = x;
  for (std::size_t i = 0; i < children.size(); ++i) {
    Module& m = *children[i].second;
    auto* lin = dynamic_cast<Linear*>(&m);
    const bool relu_next =
        i + 1 < children.size() && dynamic_cast<ReLU*>(children[i + 1].second.get()) != nullptr;
    if (fuse_relu_ && lin != nullptr && relu_next) {
      h = lin->forward(h, /*fuse_relu=*/true);
      ++i;  // the ReLU ran inside the linear kernel
    } else {
      h = m.forward(h);
    }
  }
  return h;
}

}  // namespace gradaccum::nn
