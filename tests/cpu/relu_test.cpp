#include "kernels/relu.h"

#include <gtest/gtest.h>

#include <limits>

#include "elementwise_checks.h"

namespace gradaccum {
namespace {

using test::ew::test_shapes;

TEST(Relu, ForwardMatchesReference) {
  std::uint64_t seed = 100;
  for (DType dt : {DType::f32, DType::f16}) {
    for (const Shape& s : test_shapes())
      test::ew::check_relu_forward(Device::CPU, s, dt, ++seed);
  }
}

TEST(Relu, BackwardAllModes) {
  std::uint64_t seed = 200;
  for (DType dt : {DType::f32, DType::f16}) {
    for (GradientMode mode :
         {GradientMode::Overwrite, GradientMode::Accumulate, GradientMode::Ignore}) {
      for (const Shape& s : test_shapes()) {
        test::ew::check_relu_backward(Device::CPU, s, dt, mode, seed += 3);
      }
    }
  }
}

TEST(Relu, LargeTensorsUseThreadsCorrectly) {
  const Shape s{(std::int64_t{1} << 20) + 37};
  test::ew::check_relu_forward(Device::CPU, s, DType::f32, 7);
  test::ew::check_relu_backward(Device::CPU, s, DType::f32, GradientMode::Accumulate, 8);
}

TEST(Relu, SpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> in = {-0.0f, 0.0f, -INFINITY, INFINITY, nan, -1e-30f, 1e-30f, -3.0f};
  for (DType dt : {DType::f32, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = Tensor::from_vector(in, {8}, dt);
    Tensor y = test::poisoned({8}, dt);
    relu_forward(x, y);
    const std::vector<float> v = y.to_vector();
    const float tiny = dt == DType::f32 ? 1e-30f : 0.0f;  // 1e-30 underflows to 0 in f16
    const std::vector<float> want = {0.0f, 0.0f, 0.0f, INFINITY, nan, 0.0f, tiny, 0.0f};
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (std::isnan(want[i])) {
        EXPECT_TRUE(std::isnan(v[i])) << "NaN propagates (element " << i << ")";
      } else {
        EXPECT_EQ(v[i], want[i]) << i;
        EXPECT_FALSE(std::signbit(v[i])) << "no negative zero out of relu (element " << i << ")";
      }
    }
    // The gradient is 0 where y == 0 (PyTorch) and where y is NaN, dy where y > 0.
    const Tensor dy = Tensor::full({8}, 2.0f, dt);
    Tensor dx = test::poisoned({8}, dt);
    relu_backward(dy, y, dx, GradientMode::Overwrite);
    const std::vector<float> g = dx.to_vector();
    const std::vector<float> gwant = {0, 0, 0, 2, 0, 0, dt == DType::f32 ? 2.0f : 0.0f, 0};
    EXPECT_EQ(g, gwant);
  }
}

TEST(Relu, Fp16AccumulateIsFp16Arithmetic) {
  // 2048 + 1 is a tie in fp16 (spacing 2 above 2048): rounds to even, 2048; 2048 + 3 -> 2052.
  const Tensor y = Tensor::full({2}, 1.0f, DType::f16);
  const Tensor dy = Tensor::from_vector({1.0f, 3.0f}, {2}, DType::f16);
  Tensor dx = Tensor::full({2}, 2048.0f, DType::f16);
  relu_backward(dy, y, dx, GradientMode::Accumulate);
  EXPECT_EQ(dx.to_vector(), (std::vector<float>{2048.0f, 2052.0f}));
}

TEST(Relu, BadArgumentsAreErrors) {
  test::ew::check_relu_errors(Device::CPU);
}

TEST(Relu, IgnoreDoesNothingEvenWithoutBuffer) {
  const Tensor dy = test::random_tensor({3}, 1);
  const Tensor y = test::random_tensor({3}, 2);
  Tensor none;
  EXPECT_NO_THROW(relu_backward(dy, y, none, GradientMode::Ignore));
}

}  // namespace
}  // namespace gradaccum
