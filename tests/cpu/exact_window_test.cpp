// Compensation::Exact in the window: the batch step (to f32 tolerance) for mean and sum, the same
// bytes whatever the order of the micro-batches (with deterministic micro-batch gradients), the
// overflow policies (a non-finite micro-batch is never added), and the exact window loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "exact_window_util.h"

namespace gradaccum::test {
namespace {

using optim::Compensation;
using optim::OverflowPolicy;
using optim::WindowOptions;
using ExactRun = exact_window::Run;
using exact_window::same_bytes;
using exact_window::train;

const WindowOptions kExact = WindowOptions().compensation(Compensation::Exact);

TEST(ExactWindow, GivesTheBatchStep) {
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const ExactRun exact = train(kExact, r, false);
    const ExactRun kahan = train(WindowOptions().compensation(Compensation::Kahan), r, false);
    EXPECT_LT(max_rel_diff(exact.params, kahan.params), 1e-5) << reduction_name(r);
    EXPECT_EQ(exact.reports.back().samples, 24);
    EXPECT_NEAR(exact.reports.back().loss, kahan.reports.back().loss,
                1e-6 * std::fabs(kahan.reports.back().loss));
  }
}

TEST(ExactWindow, TheOrderOfTheMicroBatchesDoesNotChangeAByte) {
  std::mt19937 rng(6);
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const ExactRun first = train(kExact, r, true);
    std::vector<int> order = {0, 1, 2, 3, 4, 5};
    for (int trial = 0; trial < 3; ++trial) {
      std::shuffle(order.begin(), order.end(), rng);
      const ExactRun again = train(kExact, r, true, order);
      EXPECT_TRUE(same_bytes(first, again)) << reduction_name(r) << ", trial " << trial;
      EXPECT_EQ(first.reports.back().loss_sum, again.reports.back().loss_sum);
    }
    // Kahan, for contrast, depends on the order (not asserted: it may happen to agree).
  }
}

TEST(ExactWindow, SkipStepSkipsANonFiniteWindow) {
  const ExactRun run = train(kExact, Reduction::Mean, true, {0, 1, 2, 3, 4, 5}, 2);
  EXPECT_TRUE(run.reports[0].applied);
  EXPECT_FALSE(run.reports[1].applied) << "the inf in micro-batch 2 must skip step 2";
  EXPECT_TRUE(run.reports[2].applied);
}

TEST(ExactWindow, DropMicroBatchLeavesItOutAndCountsTheRest) {
  const WindowOptions drop = WindowOptions()
                                 .compensation(Compensation::Exact)
                                 .overflow(OverflowPolicy::DropMicroBatch)
                                 .loss_scaling(optim::LossScaling::dynamic(256.0f));
  const ExactRun run = train(drop, Reduction::Mean, true, {0, 1, 2, 3, 4, 5}, 2);
  EXPECT_TRUE(run.reports[1].applied);
  EXPECT_EQ(run.reports[1].micro_batches_dropped, 1);
  EXPECT_EQ(run.reports[1].samples, 20);
  EXPECT_TRUE(std::isfinite(run.reports[1].loss));
  // Dropped first instead of third: the micro-batches after the drop are scaled by 128, not
  // 256, and unscaled again; a power-of-two scale changes no rounding, and exact sums do not
  // care about the order: the same bytes.
  const ExactRun moved = train(drop, Reduction::Mean, true, {2, 0, 1, 3, 4, 5}, 2);
  EXPECT_TRUE(same_bytes(run, moved));
}

}  // namespace
}  // namespace gradaccum::test
