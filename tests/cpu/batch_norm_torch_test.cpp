// BatchNorm1d against PyTorch (scripts/make_torch_bn_fixtures.py, Debian's 1.13): the MLP
// 5 → 6 → BN → ReLU → 3 trained with L1 loss and SGD for 3 steps of 12 samples.
//   window cases: PyTorch trained one batch of 12 per step; gradaccum's window mode must reach
//                 the same parameters and running statistics for every split, micro-batches of
//                 one row included, and give the same evaluation-mode output;
//   ghost cases:  PyTorch looped over the micro-batches (each its own BN batch); gradaccum's
//                 default (ghost) BN over the same split must match it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "batch_norm_helpers.h"
#include "core/npy.h"

namespace gradaccum::test {
namespace {

std::string case_dir(const std::string& name) {
  return std::string(GRADACCUM_SOURCE_DIR) + "/tests/data/torch_bn/" + name;
}

struct Config {
  std::string mode;
  Reduction reduction = Reduction::Mean;
  double lr = 0, momentum = 0, bn_eps = 0, bn_momentum = 0;
  int steps = 0;
  std::vector<std::int64_t> split;
};

Config read_config(const std::string& dir) {
  std::ifstream in(dir + "/config.txt");
  EXPECT_TRUE(in.good()) << "missing " << dir
                         << "/config.txt (run scripts/make_torch_bn_fixtures.py)";
  Config c;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string k;
    ls >> k;
    if (k == "mode") ls >> c.mode;
    if (k == "reduction") {
      std::string r;
      ls >> r;
      c.reduction = r == "sum" ? Reduction::Sum : Reduction::Mean;
    }
    if (k == "lr") ls >> c.lr;
    if (k == "momentum") ls >> c.momentum;
    if (k == "bn_eps") ls >> c.bn_eps;
    if (k == "bn_momentum") ls >> c.bn_momentum;
    if (k == "steps") ls >> c.steps;
    if (k == "split") {
      std::int64_t n;
      while (ls >> n)
        c.split.push_back(n);
    }
  }
  return c;
}

const std::vector<std::vector<std::int64_t>> kWindowSplits = {
    {12}, {6, 6}, {5, 4, 3}, {5, 1, 6}, std::vector<std::int64_t>(12, 1)};

class TorchBatchNorm : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchBatchNorm, MatchesPyTorch) {
  const std::string dir = case_dir(GetParam());
  const Config cfg = read_config(dir);
  ASSERT_FALSE(cfg.mode.empty());
  Tensor x, y;
  const std::int64_t batch = load_fixture_steps(dir, x, y);
  const Tensor x_eval = load_npy(dir + "/x_eval.npy");
  const Tensor out_eval = load_npy(dir + "/out_eval.npy");

  nn::Sequential expected = make_bn_mlp(5, 6, 3, 0, cfg.bn_eps, cfg.bn_momentum);
  expected.load(dir + "/final");
  const auto want = state_snapshot(expected);
  const bool window_mode = cfg.mode == "window";
  const auto splits =
      window_mode ? kWindowSplits : std::vector<std::vector<std::int64_t>>{cfg.split};

  double worst = 0.0;
  for (const auto& split : splits) {
    for (bool deterministic : {false, true}) {
      nn::Sequential model = make_bn_mlp(5, 6, 3, 0, cfg.bn_eps, cfg.bn_momentum);
      model.load(dir + "/init");
      GemmConfig gc;
      gc.deterministic = deterministic;
      model.set_gemm_config(gc);
      optim::AccumulationWindow window(model.parameters());
      optim::SGD opt(model.parameters(), optim::SGDOptions(cfg.lr).momentum(cfg.momentum));
      for (int s = 0; s < cfg.steps; ++s) {
        const Tensor xs = x.rows(s * batch, (s + 1) * batch);
        const Tensor ys = y.rows(s * batch, (s + 1) * batch);
        const optim::StepReport r =
            window_mode ? replay_step(model, window, opt, xs, ys, split, cfg.reduction)
                        : window_step(model, window, opt, xs, ys, split, cfg.reduction);
        EXPECT_TRUE(r.applied);
        EXPECT_EQ(r.samples, batch);
      }
      const double err = max_rel_diff(state_snapshot(model), want, 1e-2);
      worst = std::max(worst, err);
      EXPECT_LE(err, 1e-5) << GetParam() << " split of " << split.size() << " micro-batches"
                           << (deterministic ? " (deterministic GEMM)" : "");
      model.eval();
      autograd::NoGradGuard no_grad;
      const Tensor got = model(autograd::Variable(x_eval.clone())).value().clone();
      EXPECT_LE(max_rel_error(
                    got.to_vector(),
                    [&] {
                      std::vector<double> w;
                      for (float v : out_eval.to_vector())
                        w.push_back(v);
                      return w;
                    }(),
                    1e-2),
                1e-5)
          << "evaluation-mode output, " << GetParam();
    }
  }
  std::printf("%s: worst relative difference from PyTorch over all splits: %.2e\n",
              GetParam().c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TorchBatchNorm,
                         ::testing::Values("window_mean_momentum", "window_sum_plain",
                                           "window_mean_bn_options", "ghost_mean_momentum",
                                           "ghost_sum_plain"));

}  // namespace
}  // namespace gradaccum::test
