// Module, optimizer and window states of a run on the device: saved (host copies) and loaded
// back into a fresh run, it continues to the bytes of a run never stopped.
#include <gtest/gtest.h>

#include "resume_util.h"

namespace gradaccum {
namespace {

TEST(ResumeStateGpu, F32WithMomentumContinuesBitForBit) {
  GA_REQUIRE_CUDA();
  test::expect_resume_is_bit_identical(Device::CUDA, DType::f32, optim::WindowOptions());
}

TEST(ResumeStateGpu, F16WithADynamicLossScaleContinuesBitForBit) {
  GA_REQUIRE_CUDA();
  test::expect_resume_is_bit_identical(
      Device::CUDA, DType::f16,
      optim::WindowOptions().loss_scaling(optim::LossScaling::dynamic(1024, 2, 0.5, 2)));
}

TEST(ResumeStateGpu, ExactAccumulationUnderTheDropMicroBatchPolicyContinuesBitForBit) {
  GA_REQUIRE_CUDA();
  test::expect_resume_is_bit_identical(
      Device::CUDA, DType::f16,
      optim::WindowOptions()
          .compensation(optim::Compensation::Exact)
          .loss_scaling(optim::LossScaling::dynamic(65536, 2, 0.5, 3))
          .overflow(optim::OverflowPolicy::DropMicroBatch));
}

}  // namespace
}  // namespace gradaccum
