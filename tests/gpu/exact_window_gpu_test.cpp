// Compensation::Exact on the device: with deterministic micro-batch gradients the parameters are
// the CPU's, byte for byte (CPU = CUDA), whatever the order of the micro-batches.
#include <gtest/gtest.h>

#include "exact_window_util.h"

namespace gradaccum::test {
namespace {

TEST(ExactWindowCuda, SameBytesAsTheCpuInAnyOrder) {
  GA_REQUIRE_CUDA();
  const optim::WindowOptions exact =
      optim::WindowOptions().compensation(optim::Compensation::Exact);
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const exact_window::Run cpu = exact_window::train(exact, r, true);
    const exact_window::Run dev =
        exact_window::train(exact, r, true, {5, 3, 1, 0, 2, 4}, -1, Device::CUDA);
    EXPECT_TRUE(exact_window::same_bytes(cpu, dev)) << reduction_name(r);
    EXPECT_EQ(cpu.reports.back().loss_sum, dev.reports.back().loss_sum);
  }
}

}  // namespace
}  // namespace gradaccum::test
