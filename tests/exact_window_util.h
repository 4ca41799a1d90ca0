// The exact-accumulation window tests' training run (tests/cpu/exact_window_test.cpp and
// tests/gpu/exact_window_gpu_test.cpp): three steps of the MLP over six micro-batches of 4 rows.
#pragma once

#include <cstring>
#include <limits>
#include <vector>

#include "mlp_helpers.h"

namespace gradaccum::test::exact_window {

using autograd::Variable;
using optim::AccumulationWindow;
using optim::SGD;
using optim::SGDOptions;
using optim::StepReport;
using optim::WindowOptions;

constexpr std::int64_t kIn = 5, kHidden = 9, kOut = 3;

struct Run {
  std::vector<std::vector<float>> params;
  std::vector<StepReport> reports;
};

// Steps over micro-batches of 4 rows (6 a step), submitted in the order `order` gives.
inline Run train(const WindowOptions& wo, Reduction r, bool deterministic,
                 const std::vector<int>& order = {0, 1, 2, 3, 4, 5}, int inf_micro_batch = -1,
                 Device device = Device::CPU) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 21);
  model.to(device);
  GemmConfig gc;
  gc.deterministic = deterministic;
  model.set_gemm_config(gc);
  AccumulationWindow window(model.parameters(), wo);
  SGD opt(model.parameters(), SGDOptions(r == Reduction::Sum ? 0.01 : 0.1).momentum(0.9));
  nn::L1Loss loss_fn(r);
  Run out;
  for (int s = 0; s < 3; ++s) {
    std::vector<float> xv = random_values(24 * kIn, 300 + s);
    const std::vector<float> yv = random_values(24 * kOut, 400 + s);
    if (s == 1 && inf_micro_batch >= 0) {
      xv[static_cast<std::size_t>(inf_micro_batch * 4 * kIn)] =
          std::numeric_limits<float>::infinity();
    }
    window.zero_grad();
    for (int m : order) {
      Tensor x = Tensor::from_vector(
          std::vector<float>(xv.begin() + m * 4 * kIn, xv.begin() + (m + 1) * 4 * kIn), {4, kIn},
          DType::f32, device);
      Tensor y = Tensor::from_vector(
          std::vector<float>(yv.begin() + m * 4 * kOut, yv.begin() + (m + 1) * 4 * kOut), {4, kOut},
          DType::f32, device);
      window.backward(loss_fn(model(Variable(std::move(x))), Variable(std::move(y))));
    }
    out.reports.push_back(opt.step(window));
  }
  out.params = snapshot(model.parameters());
  return out;
}

inline bool same_bytes(const Run& a, const Run& b) {
  for (std::size_t i = 0; i < a.params.size(); ++i) {
    if (std::memcmp(a.params[i].data(), b.params[i].data(), a.params[i].size() * 4) != 0)
      return false;
  }
  return true;
}

}  // namespace gradaccum::test::exact_window
