// Helpers for the autograd / accumulation tests: the MLP Linear → ReLU → Linear with the train
// tool's parameter names, window steps over a split of a batch, parameter snapshots.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/nn.h"
#include "core/npy.h"
#include "optim/optim.h"
#include "test_util.h"

namespace gradaccum::test {

inline nn::Sequential make_mlp(std::int64_t in, std::int64_t hidden, std::int64_t out,
                               std::uint64_t seed) {
  return nn::Sequential({{"fc1", nn::Linear(nn::LinearOptions(in, hidden).seed(seed))},
                         {"relu", nn::ReLU()},
                         {"fc2", nn::Linear(nn::LinearOptions(hidden, out).seed(seed + 1))}});
}

// Host copies of the values (or, with grads, the gradients) of the parameters, in order.
inline std::vector<std::vector<float>> snapshot(const std::vector<autograd::Variable>& params,
                                                bool grads = false) {
  std::vector<std::vector<float>> out;
  for (const auto& p : params)
    out.push_back(grads ? p.grad().to_vector() : p.value().to_vector());
  return out;
}

inline std::vector<double> flatten(const std::vector<std::vector<float>>& v) {
  std::vector<double> out;
  for (const auto& t : v)
    out.insert(out.end(), t.begin(), t.end());
  return out;
}

// Largest relative difference between two snapshots (floor on the denominator).
inline double max_rel_diff(const std::vector<std::vector<float>>& a,
                           const std::vector<std::vector<float>>& b, double floor = 1e-3) {
  std::vector<float> fa;
  for (const auto& t : a)
    fa.insert(fa.end(), t.begin(), t.end());
  return max_rel_error(fa, flatten(b), floor);
}

// A PyTorch fixture's inputs and targets (dir/x.npy, dir/y.npy: [steps, batch, features]) as
// [steps · batch, features] tables; returns the batch.
inline std::int64_t load_fixture_steps(const std::string& dir, Tensor& x, Tensor& y) {
  x = load_npy(dir + "/x.npy");
  y = load_npy(dir + "/y.npy");
  EXPECT_EQ(x.rank(), 3);
  EXPECT_EQ(y.rank(), 3);
  const std::int64_t batch = x.size(1);
  x = std::move(x).reshape({x.size(0) * batch, x.size(2)});
  y = std::move(y).reshape({y.size(0) * batch, y.size(2)});
  return batch;
}

// One optimizer step (optim::SGD, optim::AdamW) over the batch (x, y) split into micro-batches
// of the given sizes.
template <typename Optimizer>
optim::StepReport window_step(nn::Module& model, optim::AccumulationWindow& window, Optimizer& opt,
                              const Tensor& x, const Tensor& y,
                              const std::vector<std::int64_t>& split, Reduction reduction) {
  nn::L1Loss loss_fn(reduction);
  window.zero_grad();
  std::int64_t begin = 0;
  for (std::int64_t n : split) {
    autograd::Variable xb(x.rows(begin, begin + n));
    autograd::Variable yb(y.rows(begin, begin + n));
    window.backward(loss_fn(model(xb), yb));
    begin += n;
  }
  EXPECT_EQ(begin, x.size(0)) << "the split does not cover the batch";
  return opt.step(window);
}

}  // namespace gradaccum::test
