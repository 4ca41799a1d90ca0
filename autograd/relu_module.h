// nn::ReLU: y = max(x, 0).
#pragma once

#include "autograd/functions.h"
#include "autograd/module.h"

namespace gradaccum::nn {

class ReLU : public Module {
 public:
  Variable forward(const Variable& x) override { return autograd::relu(x); }
  std::string type_name() const override { return "ReLU"; }
};

}  // namespace gradaccum::nn
