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
  s.push_back(Shape{300, 3});  // more rows than the CUDA kernel's block
  return s;
}

TEST(L1Loss, ForwardAllModes) {
  std::uint64_t seed = 300;
  for (DType dt : {DType::f32, DType::f16}) {
    for (GradientMode mode :
         {GradientMode::Overwrite, GradientMode::Accumulate, GradientMode::Ignore}) {
      for (const Shape& s : l1_shapes()) {
        test::ew::check_l1_forward(Device::CPU, s, dt, mode, seed += 3);
      }
    }
  }
}

TEST(L1Loss, ForwardIsOneChainInRowOrder) {
  // Small dyadic values: every partial sum is exact, so float64 must match exactly.
  const Tensor pred = Tensor::from_vector({1.5f, -2.0f, 0.25f, 3.0f, 0.0f, -1.0f}, {3, 2});
  const Tensor target = Tensor::from_vector({0.5f, 0.0f, 0.25f, -1.0f, 2.0f, -1.0f}, {3, 2});
  Tensor loss = test::poisoned({1});
  l1_loss_forward(pred, target, loss, GradientMode::Overwrite);
  EXPECT_EQ(loss.to_vector()[0], 1.0f + 2.0f + 0.0f + 4.0f + 2.0f + 0.0f);
  l1_loss_forward(pred, target, loss, GradientMode::Accumulate);
  EXPECT_EQ(loss.to_vector()[0], 18.0f);
  // The defined order (row sums first, then rows in order) is visible with rounding: row 0 sums
  // 2^24 + 1 + 1 -> 2^24 (each 1 is a tie to even), then adds row 1's 2 exactly.
  const float big = 16777216.0f;  // 2^24
  const Tensor p2 = Tensor::from_vector({big, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f}, {2, 3});
  const Tensor t2 = Tensor::zeros({2, 3});
  l1_loss_forward(p2, t2, loss, GradientMode::Overwrite);
  EXPECT_EQ(loss.to_vector()[0], big + 2.0f);
}

TEST(L1Loss, ForwardDoesNotDependOnTheMicroBatchSplit) {
  std::uint64_t seed = 400;
  for (DType dt : {DType::f32, DType::f16}) {
    test::ew::check_l1_split_invariance(Device::CPU, {10, 7}, dt, {3}, seed++);
    test::ew::check_l1_split_invariance(Device::CPU, {10, 7}, dt, {1, 2, 9}, seed++);
    test::ew::check_l1_split_invariance(Device::CPU, {1000}, dt, {0, 333, 999}, seed++);
    test::ew::check_l1_split_invariance(Device::CPU, {513, 3}, dt, {256, 257}, seed++);
  }
}

TEST(L1Loss, ForwardTailEqualsTheSeparateCalls) {
  std::uint64_t seed = 900;
  for (DType dt : {DType::f32, DType::f16}) {
    for (const Shape& s : {Shape{1, 1}, Shape{64, 8}, Shape{300, 3}}) {
      test::ew::check_l1_forward_tail(Device::CPU, s, dt, 1.0 / 3.0, true, seed += 5);
      test::ew::check_l1_forward_tail(Device::CPU, s, dt, 1.0, false, seed += 5);
    }
  }
}

TEST(L1Loss, CompensatedChainIsSplitInvariantAndAccurate) {
  test::ew::check_l1_compensated(Device::CPU, DType::f32, 950);
  test::ew::check_l1_compensated(Device::CPU, DType::f16, 960);
}

TEST(L1Loss, BackwardAllModes) {
  std::uint64_t seed = 500;
  for (DType dt : {DType::f32, DType::f16}) {
    for (GradientMode mode :
         {GradientMode::Overwrite, GradientMode::Accumulate, GradientMode::Ignore}) {
      for (bool scaled : {false, true}) {
        for (const Shape& s : test_shapes()) {
          test::ew::check_l1_backward(Device::CPU, s, dt, mode, scaled, seed += 3);
        }
      }
    }
  }
}

TEST(L1Loss, BackwardLarge) {
  test::ew::check_l1_backward(Device::CPU, {(std::int64_t{1} << 20) + 5}, DType::f32,
                              GradientMode::Accumulate, true, 9);
}

TEST(L1Loss, BackwardNanPropagates) {
  const Tensor pred = Tensor::from_vector({NAN, 1.0f}, {2});
  const Tensor target = Tensor::from_vector({0.0f, 1.0f}, {2});
  Tensor d = test::poisoned({2});
  l1_loss_backward(pred, target, 1.0f, nullptr, d, GradientMode::Overwrite);
  const std::vector<float> v = d.to_vector();
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], 0.0f);
}

TEST(L1Loss, BadArgumentsAreErrors) {
  test::ew::check_l1_errors(Device::CPU);
}

}  // namespace
}  // namespace gradaccum
