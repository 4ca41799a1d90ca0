// Against an independent framework: PyTorch (scripts/make_torch_fixtures.py, Debian's 1.13)
// trained the MLP 5 → 7 → 3 with L1 loss and SGD the plain way, one full batch of 12 samples per
// step, 3 steps. gradaccum starts from PyTorch's initial weights and must reach PyTorch's final
// weights for any split of each batch into micro-batches, to float32 rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "core/npy.h"
#include "mlp_helpers.h"

namespace gradaccum::test {
namespace {

std::string case_dir(const std::string& name) {
  return std::string(GRADACCUM_SOURCE_DIR) + "/tests/data/torch/" + name;
}

std::map<std::string, std::string> read_config(const std::string& dir) {
  std::ifstream in(dir + "/config.txt");
  EXPECT_TRUE(in.good()) << "missing " << dir << "/config.txt (run scripts/make_torch_fixtures.py)";
  std::map<std::string, std::string> kv;
  std::string k, v;
  while (in >> k >> v)
    kv[k] = v;
  return kv;
}

struct Split {
  const char* name;
  std::vector<std::int64_t> sizes;
};

const Split kSplits[] = {{"k1", {12}}, {"k2", {6, 6}}, {"k4", {3, 3, 3, 3}}, {"uneven", {5, 1, 6}}};

class TorchReference : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchReference, SameParametersForEverySplit) {
  const std::string dir = case_dir(GetParam());
  auto cfg = read_config(dir);
  ASSERT_FALSE(cfg.empty());
  const Reduction reduction = cfg["reduction"] == "sum" ? Reduction::Sum : Reduction::Mean;
  const optim::SGDOptions sgd = optim::SGDOptions(std::stod(cfg["lr"]))
                                    .momentum(std::stod(cfg["momentum"]))
                                    .dampening(std::stod(cfg["dampening"]))
                                    .weight_decay(std::stod(cfg["weight_decay"]))
                                    .nesterov(cfg["nesterov"] == "1");
  const int steps = std::stoi(cfg["steps"]);
  Tensor x, y;
  const std::int64_t batch = load_fixture_steps(dir, x, y);

  nn::Sequential expected = make_mlp(5, 7, 3, 0);
  expected.load(dir + "/final");
  const auto want = snapshot(expected.parameters());

  double worst = 0.0;
  for (const Split& split : kSplits) {
    for (bool deterministic : {false, true}) {
      nn::Sequential model = make_mlp(5, 7, 3, 0);
      model.load(dir + "/init");
      GemmConfig gc;
      gc.deterministic = deterministic;
      model.set_gemm_config(gc);
      optim::AccumulationWindow window(model.parameters());
      optim::SGD opt(model.parameters(), sgd);
      for (int s = 0; s < steps; ++s) {
        Tensor xs = x.rows(s * batch, (s + 1) * batch);
        Tensor ys = y.rows(s * batch, (s + 1) * batch);
        optim::StepReport r = window_step(model, window, opt, xs, ys, split.sizes, reduction);
        EXPECT_TRUE(r.applied);
        EXPECT_EQ(r.samples, batch);
        EXPECT_EQ(r.elements, batch * 3);
        EXPECT_EQ(r.micro_batches, static_cast<std::int64_t>(split.sizes.size()));
      }
      // float32 rounding: a few ulps of the parameters after 3 steps (floor 1e-2 on |want|).
      const double err = max_rel_diff(snapshot(model.parameters()), want, 1e-2);
      worst = std::max(worst, err);
      EXPECT_LE(err, 2e-6) << GetParam() << " split " << split.name
                           << (deterministic ? " (deterministic GEMM)" : "");
    }
  }
  std::printf("%s: worst relative difference from PyTorch over all splits: %.2e\n",
              GetParam().c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TorchReference,
                         ::testing::Values("mean_plain", "sum_plain", "mean_momentum",
                                           "sum_momentum", "mean_nesterov_wd"));

}  // namespace
}  // namespace gradaccum::test
