#include "kernels/accumulate.h"

#include <gtest/gtest.h>

#include "elementwise_checks.h"

namespace gradaccum {
namespace {

using test::ew::test_shapes;

TEST(Accumulate, AllCombinationsMatchReference) {
  std::uint64_t seed = 600;
  for (const test::ew::AccCase& c : test::ew::acc_cases()) {
    for (const Shape& s : test_shapes())
      test::ew::check_accumulate(Device::CPU, s, c, seed += 3);
  }
}

TEST(Accumulate, LargeTensorsUseThreadsCorrectly) {
  const Shape s{(std::int64_t{1} << 20) + 3};
  test::ew::check_accumulate(Device::CPU, s, {DType::f32, DType::f32, false, true}, 1);
  test::ew::check_accumulate(Device::CPU, s, {DType::f32, DType::f16, true, false}, 2);
}

TEST(Accumulate, Fp16AccumulatorIsFp16Arithmetic) {
  // Above 2048 the fp16 spacing is 2: 2048 + 1 ties to even (2048), 2048 + 3 -> 2052 (not the
  // f32 sum 2051 rounded the other way), and 1 + 2^-11 ties back to 1.
  Tensor acc = Tensor::from_vector({2048.0f, 2048.0f, 1.0f}, {3}, DType::f16);
  const Tensor g = Tensor::from_vector({1.0f, 3.0f, 0x1.0p-11f}, {3}, DType::f16);
  accumulate(acc, g);
  EXPECT_EQ(acc.to_vector(), (std::vector<float>{2048.0f, 2052.0f, 1.0f}));
}

TEST(Accumulate, KahanBeatsNaiveOnStagnation) {
  test::ew::check_kahan_beats_naive(Device::CPU);
}

TEST(Accumulate, KahanConventionSumIsAccPlusComp) {
  // 1 + 2^-30 is lost in f32; Kahan keeps it: acc = 1, comp = +2^-30 (acc + comp is the sum).
  Tensor acc = Tensor::full({1}, 1.0f);
  Tensor comp = Tensor::zeros({1});
  AccumulateOptions o;
  o.compensation = &comp;
  accumulate(acc, Tensor::full({1}, 0x1.0p-30f), o);
  EXPECT_EQ(acc.to_vector()[0], 1.0f);
  EXPECT_EQ(comp.to_vector()[0], 0x1.0p-30f);
}

TEST(Accumulate, NonFiniteFlagAndSkipIf) {
  for (const test::ew::AccCase& c : test::ew::acc_cases()) {
    for (std::int64_t n : {1, 17, 4097})
      test::ew::check_accumulate_flags(Device::CPU, c, n);
  }
}

TEST(Accumulate, CheckFinite) {
  test::ew::check_check_finite(Device::CPU);
}

TEST(Accumulate, SeveralTensorsAtOnceEqualOneAtATime) {
  test::ew::check_accumulate_many(Device::CPU, DType::f32, 500);
  test::ew::check_accumulate_many(Device::CPU, DType::f16, 600);
  test::ew::check_finite_many(Device::CPU, 700);
  test::ew::check_many_errors(Device::CPU);
}

TEST(Accumulate, BadArgumentsAreErrors) {
  test::ew::check_accumulate_errors(Device::CPU);
}

TEST(NonFiniteFlag, StartsClearAndClears) {
  NonFiniteFlag flag(Device::CPU);
  EXPECT_FALSE(flag.raised());
  *flag.word() = 7u;
  EXPECT_TRUE(flag.raised());
  flag.clear();
  EXPECT_FALSE(flag.raised());
  EXPECT_EQ(flag.device(), Device::CPU);
}

TEST(NonFiniteFlag, CudaFlagWithoutDeviceIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_THROW(NonFiniteFlag flag(Device::CUDA), Error);
}

}  // namespace
}  // namespace gradaccum
