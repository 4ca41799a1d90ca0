// gradaccum-train's checkpoint: DIR/checkpoint.state, one state file (core/state_dict.h) holding
// the model, the optimizer and the window (their state dicts), where the run stands (steps done,
// the data order's epoch and batch, skipped and dropped so far) and the flags that decide the
// arithmetic (TrainConfig::arithmetic). Every rank holds the same bits after a step, so rank 0
// writes it; to resume under mpirun every rank reads it (a folder they all see).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/nn.h"
#include "core/state_dict.h"
#include "optim/optim.h"

namespace gradaccum::tools {

// Where the run stands after its last complete step.
struct RunPosition {
  std::int64_t step = 0;              // optimizer steps done (skipped ones included)
  std::int64_t epoch = 0, batch = 0;  // the next batch of the data order
  std::int64_t skipped = 0, dropped = 0;
  std::int64_t world = 1;  // the world size that wrote it (for the message on resume)
};

using Arithmetic = std::vector<std::pair<std::string, std::string>>;

std::string checkpoint_file(const std::string& dir);
// Creates DIR if needed and checks that a file can be written there (before a long run).
void prepare_checkpoint_dir(const std::string& dir);
void save_checkpoint(const std::string& dir, const Arithmetic& flags, const RunPosition& position,
                     const nn::Module& model, const optim::Optimizer& opt,
                     const optim::AccumulationWindow& window);

// Reads DIR/checkpoint.state and checks that it was written under the same arithmetic flags
// (an Error naming the first flag that differs, with both values).
struct Checkpoint {
  StateDict state;
  RunPosition position;
};
Checkpoint load_checkpoint(const std::string& dir, const Arithmetic& flags);
// Puts the model's parameters back (before the window and the optimizer are made, so that a
// distributed window broadcasts them), then the optimizer's and the window's state.
void restore_model(const Checkpoint& c, nn::Module& model);
void restore_training(const Checkpoint& c, optim::Optimizer& opt,
                      optim::AccumulationWindow& window);

}  // namespace gradaccum::tools
