// ReLU on the CUDA device: the float64 reference, and bit-for-bit equality with the CPU.
#include "kernels/relu.h"

#include <gtest/gtest.h>

#include "elementwise_checks.h"

namespace gradaccum {
namespace {

using test::ew::expect_same_bits;
using test::ew::test_shapes;

TEST(ReluCuda, ForwardMatchesReferenceAndCpu) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 100;
  for (DType dt : {DType::f32, DType::f16}) {
    for (const Shape& s : test_shapes()) {
      ++seed;
      const Tensor gpu = test::ew::check_relu_forward(Device::CUDA, s, dt, seed);
      const Tensor cpu = test::ew::check_relu_forward(Device::CPU, s, dt, seed);
      expect_same_bits(gpu, cpu, "relu_forward " + test::ew::case_name(s, dt));
    }
  }
}

TEST(ReluCuda, BackwardAllModesMatchCpu) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 200;
  for (DType dt : {DType::f32, DType::f16}) {
    for (GradientMode mode :
         {GradientMode::Overwrite, GradientMode::Accumulate, GradientMode::Ignore}) {
      for (const Shape& s : test_shapes()) {
        seed += 3;
        const Tensor gpu = test::ew::check_relu_backward(Device::CUDA, s, dt, mode, seed);
        const Tensor cpu = test::ew::check_relu_backward(Device::CPU, s, dt, mode, seed);
        expect_same_bits(gpu, cpu, "relu_backward " + test::ew::case_name(s, dt));
      }
    }
  }
}

TEST(ReluCuda, GridStrideCoversLargeTensors) {
  GA_REQUIRE_CUDA();
  // More packs than one grid of the capped launch covers: the grid-stride loop must go round.
  const Shape s{(std::int64_t{1} << 22) + 13};
  test::ew::check_relu_forward(Device::CUDA, s, DType::f16, 3);
}

TEST(ReluCuda, SpecialValuesMatchCpu) {
  GA_REQUIRE_CUDA();
  const std::vector<float> in = {-0.0f, 0.0f, -INFINITY, INFINITY, NAN, -1e-30f, 1e-30f, -3.0f};
  for (DType dt : {DType::f32, DType::f16}) {
    const Tensor x = Tensor::from_vector(in, {8}, dt);
    Tensor y = test::poisoned({8}, dt);
    relu_forward(x, y);
    const Tensor xd = x.to(Device::CUDA);
    Tensor yd = test::poisoned({8}, dt, Device::CUDA);
    relu_forward(xd, yd);
    const std::vector<float> a = y.to_vector();
    const std::vector<float> b = yd.to_vector();
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(std::isnan(a[i]), std::isnan(b[i])) << i;
      if (!std::isnan(a[i])) {
        EXPECT_EQ(a[i], b[i]) << i;
        EXPECT_EQ(std::signbit(a[i]), std::signbit(b[i])) << i;
      }
    }
  }
}

TEST(ReluCuda, BadArgumentsAreErrors) {
  GA_REQUIRE_CUDA();
  test::ew::check_relu_errors(Device::CUDA);
  const Tensor x = test::random_tensor({4}, 1, DType::f32, Device::CUDA);
  Tensor y_cpu = Tensor::empty({4});
  GA_EXPECT_ERROR(relu_forward(x, y_cpu), "one device");
  const Tensor y = test::random_tensor({4}, 2, DType::f32, Device::CUDA);
  GA_EXPECT_ERROR(relu_backward(x, y, y_cpu, GradientMode::Accumulate), "one device");
}

}  // namespace
}  // namespace gradaccum
