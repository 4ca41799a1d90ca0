// Helpers for the deterministic-mode tests (tests/cpu/determinism_test.cpp,
// tests/gpu/determinism_gpu_test.cpp): train the MLP of the train tool for a few steps over a
// fixed stream of batches, each split into micro-batches, and compare the parameters' BYTES
// (memcmp, never a tolerance). See docs/determinism.md.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "mlp_helpers.h"

namespace gradaccum::test {

// The raw bytes of a tensor (copied to the host first).
inline std::vector<unsigned char> tensor_bytes(const Tensor& t) {
  const Tensor host = t.to(Device::CPU);
  std::vector<unsigned char> out(host.nbytes());
  if (!out.empty()) std::memcpy(out.data(), host.raw_data(), out.size());
  return out;
}

// Everything a run leaves behind that must be reproduced bit for bit.
struct DetResult {
  std::vector<std::string> names;
  std::vector<std::vector<unsigned char>> params;   // the model's parameters (model dtype)
  std::vector<std::vector<unsigned char>> masters;  // the optimizer's f32 master weights
  std::vector<std::vector<float>> values;           // params as floats (tolerance comparisons)
  std::vector<optim::StepReport> reports;
};

struct DetSetup {
  Device device = Device::CPU;
  DType dtype = DType::f32;
  std::int64_t in = 8, hidden = 16, out = 4, batch = 24;
  int steps = 3;
  Reduction reduction = Reduction::Mean;
  optim::WindowOptions window;
  optim::SGDOptions sgd = optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-3);
  bool deterministic = true;
  std::uint64_t seed = 11;
  // Leaves whose requires_grad is turned off before training (e.g. "fc1.bias").
  std::vector<std::string> frozen;
};

// Trains `setup.steps` steps; step s uses its own batch (seeded by s), split in order as `split`.
inline DetResult det_train(const DetSetup& setup, const std::vector<std::int64_t>& split) {
  nn::Sequential model = make_mlp(setup.in, setup.hidden, setup.out, setup.seed);
  model.to(setup.dtype);
  model.to(setup.device);
  GemmConfig gc;
  gc.deterministic = setup.deterministic;
  model.set_gemm_config(gc);
  std::vector<autograd::Variable> trained;
  for (auto& [name, p] : model.named_parameters()) {
    bool frozen = false;
    for (const std::string& f : setup.frozen)
      frozen = frozen || f == name;
    if (frozen) {
      p.set_requires_grad(false);
    } else {
      trained.push_back(p);
    }
  }
  optim::AccumulationWindow window(trained, setup.window);
  optim::SGD opt(trained, setup.sgd);
  DetResult r;
  for (int s = 0; s < setup.steps; ++s) {
    // Data made on the host in f32, then converted and moved: the same values on every device.
    const Tensor x = random_tensor({setup.batch, setup.in}, setup.seed * 1000 + 2 * s + 1)
                         .to(setup.dtype)
                         .to(setup.device);
    const Tensor y = random_tensor({setup.batch, setup.out}, setup.seed * 1000 + 2 * s + 2)
                         .to(setup.dtype)
                         .to(setup.device);
    r.reports.push_back(window_step(model, window, opt, x, y, split, setup.reduction));
  }
  for (const auto& [name, p] : model.named_parameters()) {
    r.names.push_back(name);
    r.params.push_back(tensor_bytes(p.value()));
    r.values.push_back(p.value().to_vector());
  }
  for (std::size_t i = 0; i < trained.size(); ++i)
    r.masters.push_back(tensor_bytes(opt.master_weight(i)));
  return r;
}

inline std::string split_name(const std::vector<std::int64_t>& split) {
  std::ostringstream os;
  for (std::size_t i = 0; i < split.size(); ++i) {
    if (i > 0) os << "+";
    if (i >= 6) {
      os << "... (" << split.size() << " micro-batches)";
      break;
    }
    os << split[i];
  }
  return os.str();
}

// Byte equality of every parameter and master weight; the message names the first difference.
inline ::testing::AssertionResult same_bytes(const DetResult& a, const DetResult& b) {
  if (a.params.size() != b.params.size() || a.masters.size() != b.masters.size()) {
    return ::testing::AssertionFailure() << "different parameter lists";
  }
  const auto compare = [](const std::vector<unsigned char>& x,
                          const std::vector<unsigned char>& y) -> std::int64_t {
    if (x.size() != y.size()) return 0;
    if (x.empty() || std::memcmp(x.data(), y.data(), x.size()) == 0) return -1;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (x[i] != y[i]) return static_cast<std::int64_t>(i);
    }
    return -1;
  };
  for (std::size_t i = 0; i < a.params.size(); ++i) {
    const std::int64_t at = compare(a.params[i], b.params[i]);
    if (at >= 0) {
      return ::testing::AssertionFailure() << "parameter " << a.names[i] << " differs from byte "
                                           << at << " (of " << a.params[i].size() << ")";
    }
  }
  for (std::size_t i = 0; i < a.masters.size(); ++i) {
    const std::int64_t at = compare(a.masters[i], b.masters[i]);
    if (at >= 0) {
      return ::testing::AssertionFailure() << "master weight " << i << " differs from byte " << at;
    }
  }
  return ::testing::AssertionSuccess();
}

// k micro-batches as even as possible (the train tool's --accum).
inline std::vector<std::int64_t> even_split(std::int64_t batch, std::int64_t k) {
  std::vector<std::int64_t> sizes;
  for (std::int64_t i = 0; i < k; ++i)
    sizes.push_back(batch / k + (i < batch % k ? 1 : 0));
  return sizes;
}

}  // namespace gradaccum::test
