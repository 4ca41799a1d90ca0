// A small training run whose module, optimizer and window states are saved and loaded: a run
// resumed from a state file must end with the bytes of a run never stopped (CPU and device).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/state_dict.h"
#include "mlp_helpers.h"

namespace gradaccum::test {

struct TrainingRun {
  TrainingRun(Device device, DType dtype, const optim::WindowOptions& wo)
      : model(make_mlp(6, 16, 3, 5)),
        window((model.to(dtype), model.to(device), model.parameters()), wo),
        opt(model.parameters(), optim::SGDOptions(0.05).momentum(0.9).weight_decay(1e-3)) {}
  nn::Sequential model;
  optim::AccumulationWindow window;
  optim::SGD opt;

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

// 8 steps straight against 3 steps, a state file, and 5 steps more in a fresh run.
inline void expect_resume_is_bit_identical(Device device, DType dtype,
                                           const optim::WindowOptions& wo) {
  TrainingRun straight(device, dtype, wo);
  straight.steps(0, 8);
  TrainingRun first(device, dtype, wo);
  first.steps(0, 3);
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("gradaccum-resume-" + std::to_string(getpid()) + "-" +
                             device_name(device) + "-" + dtype_name(dtype) + ".state"))
                               .string();
  first.state().save(path);
  TrainingRun resumed(device, dtype, wo);  // fresh parameters, optimizer and window
  resumed.load(StateDict::load(path));
  std::filesystem::remove(path);
  resumed.steps(3, 8);
  EXPECT_EQ(straight.state().serialize(), resumed.state().serialize());
  EXPECT_EQ(straight.window.loss_scale(), resumed.window.loss_scale());
}

}  // namespace gradaccum::test
