// The AdamW update and optimizer on the CUDA device: PyTorch's rule and bits exactly, CUDA ==
// CPU bit for bit, and a resumed run that continues to the bit.
#include "kernels/adamw.h"

#include <gtest/gtest.h>

#include "adamw_checks.h"
#include "resume_util.h"

namespace gradaccum {
namespace {

using test::adamw::adamw_cases;
using test::ew::expect_same_bits;
using test::ew::test_shapes;

TEST(AdamWCuda, MatchesPytorchRuleAndCpuExactly) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 900;
  for (const test::adamw::AdamwCase& c : adamw_cases()) {
    for (const Shape& s : test_shapes()) {
      seed += 50;
      const auto gpu = test::adamw::check_adamw(Device::CUDA, s, c, seed);
      const auto cpu = test::adamw::check_adamw(Device::CPU, s, c, seed);
      const std::string what = s.str() + " " + test::adamw::adamw_case_name(c);
      expect_same_bits(gpu.param, cpu.param, what + " param");
      expect_same_bits(gpu.m, cpu.m, what + " exp_avg");
      expect_same_bits(gpu.v, cpu.v, what + " exp_avg_sq");
      expect_same_bits(gpu.vmax, cpu.vmax, what + " max_exp_avg_sq");
      if (c.f16_copy) expect_same_bits(gpu.f16, cpu.f16, what + " f16");
    }
  }
}

TEST(AdamWCuda, GivesPytorchsBitsOnItsFixtures) {
  GA_REQUIRE_CUDA();
  for (const std::string& name : test::adamw::torch_update_cases())
    test::adamw::check_torch_update(Device::CUDA, name);
}

TEST(AdamWCuda, GridStrideCoversLargeTensors) {
  GA_REQUIRE_CUDA();
  test::adamw::check_adamw(Device::CUDA, {(std::int64_t{1} << 21) + 9}, adamw_cases()[2], 1);
}

TEST(AdamWCuda, SeveralParametersAtOnceEqualOneAtATime) {
  GA_REQUIRE_CUDA();
  test::adamw::check_adamw_many(Device::CUDA, 800);
}

TEST(AdamWCuda, NoFusedMultiplyAdd) {
  GA_REQUIRE_CUDA();
  test::adamw::check_adamw_no_fma(Device::CUDA);
}

TEST(AdamWCuda, SkipIfLeavesEverythingUnchanged) {
  GA_REQUIRE_CUDA();
  test::adamw::check_adamw_skip_if(Device::CUDA);
}

TEST(AdamWCuda, BadArgumentsAreErrors) {
  GA_REQUIRE_CUDA();
  test::adamw::check_adamw_errors(Device::CUDA);  // host tensors mixed in included
}

// 2 steps, a state file loaded into a fresh run (made with other options), 2 more steps: the
// bytes of 4 steps straight.
TEST(AdamWStateCuda, F32ContinuesBitForBit) {
  GA_REQUIRE_CUDA();
  test::expect_optimizer_resume_is_bit_identical<optim::AdamW>(
      Device::CUDA, DType::f32, {}, optim::AdamWOptions(0.01), optim::AdamWOptions(0.5), 2, 4);
}

TEST(AdamWStateCuda, F16WithAmsgradAndADynamicLossScaleContinuesBitForBit) {
  GA_REQUIRE_CUDA();
  test::expect_optimizer_resume_is_bit_identical<optim::AdamW>(
      Device::CUDA, DType::f16,
      optim::WindowOptions().loss_scaling(optim::LossScaling::dynamic(1024, 2, 0.5, 2)),
      optim::AdamWOptions(0.01).betas(0.8, 0.9).eps(1e-6).weight_decay(0.1).amsgrad(true),
      optim::AdamWOptions(0.5), 2, 4);
}

// The optimizer's whole step on the device equals the CPU's, to the bit: the same model, window
// and batches (deterministic GEMMs), amsgrad and weight decay.
TEST(AdamWStateCuda, DeviceTrainingEqualsCpuTraining) {
  GA_REQUIRE_CUDA();
  const optim::AdamWOptions o = optim::AdamWOptions(0.01).amsgrad(true).weight_decay(0.05);
  test::OptimizerRun<optim::AdamW> gpu(Device::CUDA, DType::f32, {}, o);
  test::OptimizerRun<optim::AdamW> cpu(Device::CPU, DType::f32, {}, o);
  GemmConfig gc;
  gc.deterministic = true;
  gpu.model.set_gemm_config(gc);
  cpu.model.set_gemm_config(gc);
  gpu.steps(0, 3);
  cpu.steps(0, 3);
  EXPECT_EQ(gpu.opt.step_count(), 3);
  EXPECT_EQ(gpu.opt.state_dict().serialize(), cpu.opt.state_dict().serialize());
}

}  // namespace
}  // namespace gradaccum
