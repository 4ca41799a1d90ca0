// The study's runs (study/forum_runs.h) on random images: the claims gradaccum-study's report
// makes, asserted here on a model small enough for every build: the window gives the big batch's
// bytes for every split; the per-micro-batch recipe does not on an uneven one; the naive loop's
// gradient is k times the true one; ghost batch norm differs from the big batch, window batch
// norm does not.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "study/forum_runs.h"
#include "test_util.h"

namespace gradaccum::test {
namespace {

study::AutoencoderData random_data() {
  study::AutoencoderData d;
  d.train = random_tensor({96, 784}, 41, DType::f32, Device::CPU, 0.0f, 1.0f);
  d.test = random_tensor({24, 784}, 42, DType::f32, Device::CPU, 0.0f, 1.0f);
  return d;
}

study::RunSpec small_spec() {
  study::RunSpec s;
  s.hidden = 6;
  s.batch = 16;
  s.steps = 4;
  s.lr = 0.5;
  return s;
}

TEST(ForumRuns, WindowGivesTheBigBatchForEverySplit) {
  const study::AutoencoderData data = random_data();
  study::RunSpec s = small_spec();
  const study::RunResult big = study::train_run(s, data);
  ASSERT_EQ(big.losses.size(), 4u);
  for (const std::vector<std::int64_t>& split :
       {std::vector<std::int64_t>{4, 4, 4, 4}, std::vector<std::int64_t>(16, 1),
        std::vector<std::int64_t>{7, 1, 8}}) {
    s.split = split;
    const study::RunResult r = study::train_run(s, data);
    EXPECT_EQ(r.hash, big.hash) << split.size() << " micro-batches";
    EXPECT_EQ(r.losses, big.losses);
  }
  s.split = {7, 1, 8};
  s.recipe = study::Recipe::MicroBatchMean;
  EXPECT_GT(study::relative_distance(study::train_run(s, data).parameters, big.parameters), 1e-6);
}

TEST(ForumRuns, TheNaiveLoopsGradientIsKTimesTheTrueOne) {
  const study::AutoencoderData data = random_data();
  study::RunSpec s = small_spec();
  s.split = {4, 4, 4, 4};
  const std::vector<float> truth = study::recipe_gradient(s, data);
  s.recipe = study::Recipe::NaiveSum;
  std::vector<float> naive = study::recipe_gradient(s, data);
  for (float& g : naive)
    g /= 4.0f;
  EXPECT_LE(study::relative_distance(naive, truth), 1e-6);
  // The per-micro-batch recipe with equal micro-batches is the true gradient.
  s.recipe = study::Recipe::MicroBatchMean;
  EXPECT_LE(study::relative_distance(study::recipe_gradient(s, data), truth), 1e-6);
}

TEST(ForumRuns, GhostBatchNormDiffersAndWindowBatchNormDoesNot) {
  const study::AutoencoderData data = random_data();
  study::RunSpec s = small_spec();
  s.batch_norm = study::BatchNormMode::Ghost;
  const study::RunResult big = study::train_run(s, data);
  s.split = {4, 4, 4, 4};
  EXPECT_GT(study::relative_distance(study::train_run(s, data).parameters, big.parameters), 1e-3);
  s.batch_norm = study::BatchNormMode::Window;
  EXPECT_EQ(study::train_run(s, data).hash, big.hash);
  s.split = std::vector<std::int64_t>(16, 1);  // one row each: fine in window mode
  EXPECT_EQ(study::train_run(s, data).hash, big.hash);
}

TEST(ForumRuns, AdamWRunsAndBadSpecsAreRefused) {
  const study::AutoencoderData data = random_data();
  study::RunSpec s = small_spec();
  s.optimizer = study::OptimizerKind::AdamW;
  s.lr = 1e-3;
  const study::RunResult a = study::train_run(s, data);
  s.split = {8, 8};
  EXPECT_EQ(study::train_run(s, data).hash, a.hash);
  s.split = {8, 7};
  EXPECT_THROW(study::train_run(s, data), Error);
  s.split = {};
  s.batch = 200;  // more than the training rows
  EXPECT_THROW(study::train_run(s, data), Error);
}

TEST(ForumRuns, MicroBatchGradientsFeedTheStabilityStudy) {
  const study::AutoencoderData data = random_data();
  std::int64_t entries = 0;
  const std::vector<float> g = study::micro_batch_gradients(small_spec(), data, 8, 2, &entries);
  EXPECT_EQ(entries, 6 * 784 + 784);
  EXPECT_EQ(g.size(), static_cast<std::size_t>(8 * entries));
  EXPECT_THROW(study::micro_batch_gradients(small_spec(), data, 100, 2, &entries), Error);
}

}  // namespace
}  // namespace gradaccum::test
