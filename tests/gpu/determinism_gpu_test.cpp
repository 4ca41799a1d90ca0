// Deterministic mode on Device::CUDA (the emulated device in CI, a real GPU when present): byte
// identical parameters across micro-batch splits and run to run, the CPU's bytes equal to the
// device's (fp32, momentum and weight decay), and fp16 tensor cores at split points that are
// multiples of 16 rows. Kept small for the emulator. See docs/determinism.md.
#include <gtest/gtest.h>

#include "determinism_util.h"

namespace gradaccum::test {
namespace {

using optim::LossScaling;
using optim::SGDOptions;
using optim::WindowOptions;

DetSetup cuda_setup(Reduction r = Reduction::Mean) {
  DetSetup s;  // MLP 8-16-4, batch 24, 3 steps
  s.device = Device::CUDA;
  s.reduction = r;
  s.sgd = SGDOptions(r == Reduction::Mean ? 0.05 : 5e-4).momentum(0.9).weight_decay(1e-3);
  return s;
}

const std::vector<std::vector<std::int64_t>> kSplits24 = {
    {12, 12}, {6, 6, 6, 6}, {7, 7, 7, 3}, {20, 1, 3}, std::vector<std::int64_t>(24, 1)};

TEST(DeterminismGpu, EverySplitGivesTheSameBytes) {
  GA_REQUIRE_CUDA();
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const DetSetup setup = cuda_setup(r);
    const DetResult one = det_train(setup, {24});
    for (const auto& split : kSplits24) {
      EXPECT_TRUE(same_bytes(det_train(setup, split), one))
          << reduction_name(r) << ", split " << split_name(split);
    }
  }
}

TEST(DeterminismGpu, TheCpuPredictsTheDeviceBytes) {
  GA_REQUIRE_CUDA();
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    DetSetup dev = cuda_setup(r);
    dev.steps = 4;
    DetSetup cpu = dev;
    cpu.device = Device::CPU;
    const DetResult c = det_train(cpu, {24});
    EXPECT_TRUE(same_bytes(det_train(dev, {24}), c)) << reduction_name(r) << ", one batch";
    // And across devices and splits at once.
    EXPECT_TRUE(same_bytes(det_train(dev, {7, 7, 7, 3}), c)) << reduction_name(r) << ", 7+7+7+3";
    EXPECT_TRUE(same_bytes(det_train(cpu, {5, 19}), c)) << reduction_name(r) << ", cpu 5+19";
  }
  // Nesterov and a static loss scale (skip-step) on both sides.
  DetSetup dev = cuda_setup();
  dev.sgd = SGDOptions(0.05).momentum(0.9).nesterov(true).weight_decay(0.01);
  dev.window = WindowOptions().loss_scaling(LossScaling::fixed(512.0f));
  DetSetup cpu = dev;
  cpu.device = Device::CPU;
  EXPECT_TRUE(same_bytes(det_train(dev, {8, 16}), det_train(cpu, {24}))) << "nesterov, scaled";
}

TEST(DeterminismGpu, RunToRunTheSameBytes) {
  GA_REQUIRE_CUDA();
  const DetSetup setup = cuda_setup();
  EXPECT_TRUE(same_bytes(det_train(setup, {7, 17}), det_train(setup, {7, 17})));
}

TEST(DeterminismGpu, WindowLossIsTheSameOnBothDevicesAndSplits) {
  GA_REQUIRE_CUDA();
  const DetSetup dev = cuda_setup();
  DetSetup cpu = dev;
  cpu.device = Device::CPU;
  const DetResult a = det_train(dev, {7, 7, 7, 3});
  const DetResult b = det_train(cpu, {24});
  ASSERT_EQ(a.reports.size(), b.reports.size());
  for (std::size_t s = 0; s < a.reports.size(); ++s)
    EXPECT_EQ(a.reports[s].loss_sum, b.reports[s].loss_sum) << "step " << s;
}

TEST(DeterminismGpu, F16TensorCoresAtMultiplesOf16Rows) {
  GA_REQUIRE_CUDA();
  // Every micro-batch starts a new k tile at its first row, so with split points at multiples
  // of 16 (relative to the batch) the dw product sees the same k16 groups, each row the same
  // position inside its m16 tile, and the same f32 accumulator at each group boundary. The last
  // micro-batch may end anywhere (its partial group is the batch's partial group).
  DetSetup setup = cuda_setup();
  setup.dtype = DType::f16;
  setup.batch = 53;
  const DetResult one = det_train(setup, {53});
  for (const auto& split : {std::vector<std::int64_t>{16, 37}, std::vector<std::int64_t>{32, 21},
                            std::vector<std::int64_t>{16, 16, 16, 5}}) {
    EXPECT_TRUE(same_bytes(det_train(setup, split), one)) << "f16, split " << split_name(split);
  }
  EXPECT_TRUE(same_bytes(det_train(setup, {16, 37}), det_train(setup, {16, 37}))) << "run to run";
}

TEST(DeterminismGpu, DefaultModeStaysWithinRoundingOfTheCpu) {
  GA_REQUIRE_CUDA();
  // The default mode on CUDA is the same hand-written kernel; on the CPU it is OpenBLAS (when
  // built with it): within float32 rounding of the deterministic device result.
  const DetSetup det = cuda_setup();
  DetSetup fast_cpu = det;
  fast_cpu.device = Device::CPU;
  fast_cpu.deterministic = false;
  DetSetup fast_dev = det;
  fast_dev.deterministic = false;
  const DetResult ref = det_train(det, {24});
  EXPECT_LE(max_rel_diff(det_train(fast_cpu, {6, 18}).values, ref.values), 1e-5);
  EXPECT_LE(max_rel_diff(det_train(fast_dev, {6, 18}).values, ref.values), 1e-5);
}

}  // namespace
}  // namespace gradaccum::test
