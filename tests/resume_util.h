// A small training run whose module, optimizer and window states are saved and loaded: a run
// resumed from a state file must end with the bytes of a run never stopped (CPU and device).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/state_dict.h"
#include "mlp_helpers.h"

namespace gradaccum::test {

// The run with any optimizer (optim::SGD, optim::AdamW) and its options.
template <typename Optimizer>
struct OptimizerRun {
  template <typename Options>
  OptimizerRun(Device device, DType dtype, const optim::WindowOptions& wo, const Options& o)
      : model(make_mlp(6, 16, 3, 5)),
        window((model.to(dtype), model.to(device), model.parameters()), wo),
        opt(model.parameters(), o) {}
  nn::Sequential model;
  optim::AccumulationWindow window;
  Optimizer opt;

  // Steps [from, to): each a batch of 40 rows in micro-batches of 15, 15 and 10.
  void steps(int from, int to) {
    for (int s = from; s < to; ++s) {
      const DType dt = model.dtype();
      const Device dev = model.device();
      Tensor x = Tensor::from_vector(random_values(40 * 6, 100 + s), {40, 6}).to(dt).to(dev);
      Tensor y = Tensor::from_vector(random_values(40 * 3, 200 + s), {40, 3}).to(dt).to(dev);
      window_step(model, window, opt, x, y, {15, 15, 10}, Reduction::Mean);
    }
  }
  StateDict state() const {
    StateDict s;
    s.merge("model.", model.state_dict());
    s.merge("optimizer.", opt.state_dict());
    s.merge("window.", window.state_dict());
    return s;
  }
  void load(const StateDict& s) {
    model.load_state_dict(s.under("model."));
    opt.load_state_dict(s.under("optimizer."));
    window.load_state_dict(s.under("window."));
  }
};

// The SGD of the resume tests: momentum and weight decay.
inline optim::SGDOptions resume_sgd_options() {
  return optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-3);
}

struct TrainingRun : OptimizerRun<optim::SGD> {
  TrainingRun(Device device, DType dtype, const optim::WindowOptions& wo)
      : OptimizerRun(device, dtype, wo, resume_sgd_options()) {}
};

// `total` steps straight against `stop` steps, a state file, and the rest in a fresh run (its
// optimizer made with `fresh` options: the state's must replace them).
template <typename Optimizer, typename Options>
void expect_optimizer_resume_is_bit_identical(Device device, DType dtype,
                                              const optim::WindowOptions& wo, const Options& o,
                                              const Options& fresh, int stop, int total) {
  OptimizerRun<Optimizer> straight(device, dtype, wo, o);
  straight.steps(0, total);
  OptimizerRun<Optimizer> first(device, dtype, wo, o);
  first.steps(0, stop);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gradaccum-resume-" + std::to_string(getpid()) + "-" +
                             device_name(device) + "-" + dtype_name(dtype) + ".state"))
                               .string();
  first.state().save(path);
  OptimizerRun<Optimizer> resumed(device, dtype, wo, fresh);  // fresh parameters, optimizer, window
  resumed.load(StateDict::load(path));
  std::filesystem::remove(path);
  resumed.steps(stop, total);
  EXPECT_EQ(straight.state().serialize(), resumed.state().serialize());
  EXPECT_EQ(straight.window.loss_scale(), resumed.window.loss_scale());
}

// 8 steps straight against 3 steps, a state file, and 5 steps more in a fresh run (SGD).
inline void expect_resume_is_bit_identical(Device device, DType dtype,
                                           const optim::WindowOptions& wo) {
  expect_optimizer_resume_is_bit_identical<optim::SGD>(device, dtype, wo, resume_sgd_options(),
                                                       resume_sgd_options(), 3, 8);
}

}  // namespace gradaccum::test
