// Accumulation on the CUDA device: float64 reference, and bit-for-bit equality with the CPU.
#include "kernels/accumulate.h"

#include <gtest/gtest.h>

#include "elementwise_checks.h"

namespace gradaccum {
namespace {

using test::ew::test_shapes;

TEST(AccumulateCuda, AllCombinationsMatchCpuBitForBit) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 600;
  for (const test::ew::AccCase& c : test::ew::acc_cases()) {
    for (const Shape& s : test_shapes()) {
      seed += 3;
      const auto gpu = test::ew::check_accumulate(Device::CUDA, s, c, seed);
      const auto cpu = test::ew::check_accumulate(Device::CPU, s, c, seed);
      const std::string what = s.str() + " " + test::ew::acc_case_name(c);
      test::ew::expect_same_bits(gpu.acc, cpu.acc, what + " acc");
      if (c.kahan) test::ew::expect_same_bits(gpu.comp, cpu.comp, what + " comp");
    }
  }
}

TEST(AccumulateCuda, GridStrideCoversLargeTensors) {
  GA_REQUIRE_CUDA();
  const Shape s{(std::int64_t{1} << 22) + 5};
  test::ew::check_accumulate(Device::CUDA, s, {DType::f32, DType::f16, true, true}, 4);
}

TEST(AccumulateCuda, KahanBeatsNaiveOnStagnation) {
  GA_REQUIRE_CUDA();
  test::ew::check_kahan_beats_naive(Device::CUDA);
}

TEST(AccumulateCuda, NonFiniteFlagAndSkipIf) {
  GA_REQUIRE_CUDA();
  for (const test::ew::AccCase& c : test::ew::acc_cases()) {
    for (std::int64_t n : {1, 17, 4097})
      test::ew::check_accumulate_flags(Device::CUDA, c, n);
  }
}

TEST(AccumulateCuda, CheckFinite) {
  GA_REQUIRE_CUDA();
  test::ew::check_check_finite(Device::CUDA);
}

TEST(AccumulateCuda, SeveralTensorsAtOnceEqualOneAtATime) {
  GA_REQUIRE_CUDA();
  test::ew::check_accumulate_many(Device::CUDA, DType::f32, 500);
  test::ew::check_accumulate_many(Device::CUDA, DType::f16, 600);
  test::ew::check_finite_many(Device::CUDA, 700);
  test::ew::check_many_errors(Device::CUDA);
}

TEST(AccumulateCuda, BadArgumentsAreErrors) {
  GA_REQUIRE_CUDA();
  test::ew::check_accumulate_errors(Device::CUDA);
  Tensor acc = Tensor::zeros({4}, DType::f32, Device::CUDA);
  const Tensor g_cpu = Tensor::zeros({4});
  GA_EXPECT_ERROR(accumulate(acc, g_cpu), "one device");
  const Tensor g = Tensor::zeros({4}, DType::f32, Device::CUDA);
  Tensor comp_cpu = Tensor::zeros({4});
  AccumulateOptions o;
  o.compensation = &comp_cpu;
  GA_EXPECT_ERROR(accumulate(acc, g, o), "one device");
  const Tensor scale_cpu = Tensor::full({1}, 1.0f);
  AccumulateOptions so;
  so.scale = &scale_cpu;
  GA_EXPECT_ERROR(accumulate(acc, g, so), "one device");
  NonFiniteFlag host_flag(Device::CPU);
  AccumulateOptions fo;
  fo.nonfinite = &host_flag;
  GA_EXPECT_ERROR(accumulate(acc, g, fo), "nonfinite flag");
  AccumulateOptions ko;
  ko.skip_if = &host_flag;
  GA_EXPECT_ERROR(accumulate(acc, g, ko), "skip_if flag");
  GA_EXPECT_ERROR(check_finite(g, host_flag), "flag");
}

TEST(NonFiniteFlagCuda, StartsClearRaisesAndClears) {
  GA_REQUIRE_CUDA();
  NonFiniteFlag flag(Device::CUDA);
  EXPECT_EQ(flag.device(), Device::CUDA);
  EXPECT_FALSE(flag.raised());
  check_finite(Tensor::full({3}, INFINITY, DType::f32, Device::CUDA), flag);
  EXPECT_TRUE(flag.raised());
  flag.clear();
  EXPECT_FALSE(flag.raised());
}

}  // namespace
}  // namespace gradaccum
