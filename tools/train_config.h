// gradaccum-train's configuration: its flags, parsed and checked (FlagError naming the flag),
// and the part of them that decides the arithmetic, which a checkpoint records and a resumed run
// must repeat.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm_config.h"
#include "optim/optim.h"

namespace gradaccum::tools {

struct TrainConfig {
  Device device = Device::CPU;
  DType dtype = DType::f32;
  std::int64_t in = 32, hidden = 128, out = 8, batch = 256;
  std::int64_t steps = 0, epochs = 0;  // one of them is set after parsing
  std::int64_t print_every = 10, eval_every = 0, checkpoint_every = 0;
  std::int64_t accum = 1, micro = 0;  // --accum, --micro-batch (0: not given)
  double dist_timeout = 300;
  std::string optimizer = "sgd";  // sgd or adamw
  double lr = 0.05, momentum = 0.9, weight_decay = 0, dampening = 0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // AdamW
  bool amsgrad = false;
  bool nesterov = false, deterministic = false, graph = false;
  bool shuffle = false, drop_last = false;
  Reduction reduction = Reduction::Mean;
  optim::WindowOptions window;
  GemmConfig gemm;
  std::uint64_t seed = 0;
  // BatchNorm1d after the first layer: none, micro-batch (ghost: each micro-batch's statistics)
  // or window (the window's statistics, optim::BatchNormReplay).
  std::string batch_norm = "none";
  std::string dataset;  // "" or "fashion-mnist"
  std::string data, targets, eval_data, eval_targets;
  std::string load_dir, save_dir, checkpoint_dir, resume_dir;
  std::string log_csv, plot, reconstructions;

  bool synthetic() const { return dataset.empty() && data.empty(); }
  bool has_eval_set() const { return dataset == "fashion-mnist" || !eval_data.empty(); }
  // The flags that decide the arithmetic, name and canonical value: the same values give the
  // same training, so a checkpoint is resumed only under them. Left out: how long to train,
  // where (device, world size) and what is printed or saved.
  std::vector<std::pair<std::string, std::string>> arithmetic() const;
};

// The optimizer the flags describe, over `params`.
std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c,
                                                 std::vector<autograd::Variable> params);

// Parses argv; prints the usage and exits 0 on --help.
TrainConfig parse_train_flags(int argc, char** argv);

}  // namespace gradaccum::tools
