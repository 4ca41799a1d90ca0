// L1 loss on the CUDA device: float64 reference, and bit-for-bit equality with the CPU (the
// forward is one defined f32 chain, the backward elementwise).
#include "kernels/l1_loss.h"

#include <gtest/gtest.h>

#include "elementwise_checks.h"

namespace gradaccum {
namespace {

using test::ew::test_shapes;

std::vector<Shape> l1_shapes() {
  std::vector<Shape> s = test_shapes();
  s.push_back(Shape{5, 0});
  s.push_back(Shape{1, 4097});
  s.push_back(Shape{64, 10});
  s.push_back(Shape{300, 3});  // more rows than the kernel's block: several passes
  s.push_back(Shape{1000, 17});
  return s;
}

TEST(L1LossCuda, ForwardAllModesMatchCpuBitForBit) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 300;
  for (DType dt : {DType::f32, DType::f16}) {
    for (GradientMode mode :
         {GradientMode::Overwrite, GradientMode::Accumulate, GradientMode::Ignore}) {
      for (const Shape& s : l1_shapes()) {
        seed += 3;
        const float gpu = test::ew::check_l1_forward(Device::CUDA, s, dt, mode, seed);
        const float cpu = test::ew::check_l1_forward(Device::CPU, s, dt, mode, seed);
        EXPECT_EQ(gpu, cpu) << test::ew::case_name(s, dt) << " mode " << static_cast<int>(mode);
      }
    }
  }
}

TEST(L1LossCuda, ForwardDoesNotDependOnTheMicroBatchSplit) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 400;
  for (DType dt : {DType::f32, DType::f16}) {
    test::ew::check_l1_split_invariance(Device::CUDA, {10, 7}, dt, {3}, seed++);
    test::ew::check_l1_split_invariance(Device::CUDA, {10, 7}, dt, {1, 2, 9}, seed++);
    test::ew::check_l1_split_invariance(Device::CUDA, {1000}, dt, {0, 333, 999}, seed++);
    test::ew::check_l1_split_invariance(Device::CUDA, {513, 3}, dt, {256, 257}, seed++);
  }
}

TEST(L1LossCuda, ForwardTailEqualsTheSeparateCallsAndTheCpu) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 900;
  for (DType dt : {DType::f32, DType::f16}) {
    for (const Shape& s : {Shape{1, 1}, Shape{64, 8}, Shape{300, 3}}) {
      for (bool dynamic : {true, false}) {
        seed += 5;
        const float gpu =
            test::ew::check_l1_forward_tail(Device::CUDA, s, dt, 1.0 / 3.0, dynamic, seed);
        const float cpu =
            test::ew::check_l1_forward_tail(Device::CPU, s, dt, 1.0 / 3.0, dynamic, seed);
        EXPECT_EQ(gpu, cpu) << test::ew::case_name(s, dt);
      }
    }
  }
}

TEST(L1LossCuda, CompensatedChainMatchesTheCpuBitForBit) {
  GA_REQUIRE_CUDA();
  for (DType dt : {DType::f32, DType::f16}) {
    EXPECT_EQ(test::ew::check_l1_compensated(Device::CUDA, dt, 950),
              test::ew::check_l1_compensated(Device::CPU, dt, 950));
  }
}

TEST(L1LossCuda, BackwardAllModesMatchCpu) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 500;
  for (DType dt : {DType::f32, DType::f16}) {
    for (GradientMode mode :
         {GradientMode::Overwrite, GradientMode::Accumulate, GradientMode::Ignore}) {
      for (bool scaled : {false, true}) {
        for (const Shape& s : test_shapes()) {
          seed += 3;
          const Tensor gpu = test::ew::check_l1_backward(Device::CUDA, s, dt, mode, scaled, seed);
          const Tensor cpu = test::ew::check_l1_backward(Device::CPU, s, dt, mode, scaled, seed);
          test::ew::expect_same_bits(gpu, cpu, "l1_loss_backward " + test::ew::case_name(s, dt));
        }
      }
    }
  }
}

TEST(L1LossCuda, BadArgumentsAreErrors) {
  GA_REQUIRE_CUDA();
  test::ew::check_l1_errors(Device::CUDA);
  const Tensor pred = test::random_tensor({4}, 1, DType::f32, Device::CUDA);
  const Tensor target_cpu = test::random_tensor({4}, 2);
  const Tensor target = test::random_tensor({4}, 2, DType::f32, Device::CUDA);
  Tensor loss_cpu = Tensor::zeros({1});
  Tensor loss = Tensor::zeros({1}, DType::f32, Device::CUDA);
  GA_EXPECT_ERROR(l1_loss_forward(pred, target_cpu, loss, GradientMode::Overwrite), "one device");
  GA_EXPECT_ERROR(l1_loss_forward(pred, target, loss_cpu, GradientMode::Overwrite), "one device");
  Tensor dpred = Tensor::zeros({4}, DType::f32, Device::CUDA);
  const Tensor scale_cpu = Tensor::full({1}, 2.0f);
  GA_EXPECT_ERROR(l1_loss_backward(pred, target, 1.0f, &scale_cpu, dpred, GradientMode::Overwrite),
                  "one device");
}

}  // namespace
}  // namespace gradaccum
