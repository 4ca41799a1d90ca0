// nn::Linear(in, out, bias): y = x·Wᵀ + b with PyTorch's default initialisation.
#pragma once

#include <cstdint>
#include <optional>

#include "autograd/module.h"

namespace gradaccum::nn {

struct LinearOptions {
  LinearOptions(std::int64_t in_features, std::int64_t out_features)
      : in_(in_features), out_(out_features) {}
  LinearOptions& bias(bool b) {
    bias_ = b;
    return *this;
  }
  // Initialisation seed (weight from seed, bias from a seed derived from it); without one, the
  // next seed of nn::manual_seed's sequence.
  LinearOptions& seed(std::uint64_t s) {
    seed_ = s;
    return *this;
  }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  bool bias() const { return bias_; }
  const std::optional<std::uint64_t>& seed() const { return seed_; }

 private:
  std::int64_t in_;
  std::int64_t out_;
  bool bias_ = true;
  std::optional<std::uint64_t> seed_;
};

class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias = true)
      : Linear(LinearOptions(in_features, out_features).bias(bias)) {}

  Variable forward(const Variable& x) override { return forward(x, false); }
  // With fuse_relu, ReLU(x·Wᵀ + b) in one kernel (what Sequential does for Linear → ReLU).
  Variable forward(const Variable& x, bool fuse_relu);
  std::string type_name() const override { return "Linear"; }

  const Variable& weight() const { return weight_; }
  const Variable& bias() const { return bias_; }  // undefined without bias
  const LinearOptions& options() const { return options_; }

 private:
  LinearOptions options_;
  Variable weight_;
  Variable bias_;
};

}  // namespace gradaccum::nn
