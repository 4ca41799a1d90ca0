// nn::L1Loss(reduction): |pred - target| summed or averaged over every element (PyTorch's
// count: samples x outputs).
#pragma once

#include "autograd/functions.h"
#include "autograd/variable.h"
#include "kernels/l1_loss.h"

namespace gradaccum::nn {

class L1Loss {
 public:
  explicit L1Loss(Reduction reduction = Reduction::Mean) : reduction_(reduction) {}
  autograd::Variable forward(const autograd::Variable& pred,
                             const autograd::Variable& target) const {
    return autograd::l1_loss(pred, target, reduction_);
  }
  autograd::Variable operator()(const autograd::Variable& pred,
                                const autograd::Variable& target) const {
    return forward(pred, target);
  }
  Reduction reduction() const { return reduction_; }

 private:
  Reduction reduction_;
};

}  // namespace gradaccum::nn
