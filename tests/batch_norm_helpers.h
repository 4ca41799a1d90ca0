// Helpers for the BatchNorm tests: the train tool's BN model, window-mode and ghost steps over a
// split of a batch, snapshots of the parameters and running statistics.
#pragma once

#include <cstdint>
#include <vector>

#include "autograd/nn.h"
#include "mlp_helpers.h"
#include "optim/optim.h"

namespace gradaccum::test {

// Linear → BatchNorm1d → ReLU → Linear, named fc1, bn, relu, fc2 (gradaccum-train's names).
inline nn::Sequential make_bn_mlp(std::int64_t in, std::int64_t hidden, std::int64_t out,
                                  std::uint64_t seed, double eps = 1e-5, double momentum = 0.1) {
  const nn::BatchNormOptions o = nn::BatchNormOptions(hidden).eps(eps).momentum(momentum);
  return nn::Sequential({{"fc1", nn::Linear(nn::LinearOptions(in, hidden).seed(seed))},
                         {"bn", nn::BatchNorm1d(o)},
                         {"relu", nn::ReLU()},
                         {"fc2", nn::Linear(nn::LinearOptions(hidden, out).seed(seed + 1))}});
}

// Parameters, then buffers (host copies).
inline std::vector<std::vector<float>> state_snapshot(const nn::Module& m) {
  std::vector<std::vector<float>> out = snapshot(m.parameters());
  for (const auto& [name, t] : m.named_buffers())
    out.push_back(t->to_vector());
  return out;
}

// The window-mode step of the batch (x, y) split into micro-batches of the given sizes.
inline optim::StepReport replay_step(nn::Module& model, optim::AccumulationWindow& window,
                                     optim::SGD& opt, const Tensor& x, const Tensor& y,
                                     const std::vector<std::int64_t>& split, Reduction reduction) {
  nn::L1Loss loss_fn(reduction);
  optim::BatchNormReplay replay(
      window, model, [loss_fn](const autograd::Variable& p, const autograd::Variable& t) {
        return loss_fn(p, t);
      });
  window.zero_grad();
  std::int64_t begin = 0;
  for (std::int64_t n : split) {
    replay.submit(x.rows(begin, begin + n), y.rows(begin, begin + n));
    begin += n;
  }
  EXPECT_EQ(begin, x.size(0)) << "the split does not cover the batch";
  replay.backward();
  return opt.step(window);
}

}  // namespace gradaccum::test
