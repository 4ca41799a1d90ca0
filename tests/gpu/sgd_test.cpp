// The SGD update on the CUDA device: PyTorch's rule exactly, and CUDA == CPU bit for bit.
#include "kernels/sgd.h"

#include <gtest/gtest.h>

#include "elementwise_checks.h"

namespace gradaccum {
namespace {

using test::ew::test_shapes;

TEST(SgdCuda, MatchesPytorchRuleAndCpuExactly) {
  GA_REQUIRE_CUDA();
  std::uint64_t seed = 700;
  for (const test::ew::SgdCase& c : test::ew::sgd_cases()) {
    for (const Shape& s : test_shapes()) {
      seed += 50;
      const auto gpu = test::ew::check_sgd(Device::CUDA, s, c, seed);
      const auto cpu = test::ew::check_sgd(Device::CPU, s, c, seed);
      const std::string what = s.str() + " " + test::ew::sgd_case_name(c);
      test::ew::expect_same_bits(gpu.param, cpu.param, what + " param");
      if (c.h.momentum != 0.0f) test::ew::expect_same_bits(gpu.buf, cpu.buf, what + " buf");
      if (c.f16_copy) test::ew::expect_same_bits(gpu.f16, cpu.f16, what + " f16");
    }
  }
}

TEST(SgdCuda, GridStrideCoversLargeTensors) {
  GA_REQUIRE_CUDA();
  test::ew::check_sgd(Device::CUDA, {(std::int64_t{1} << 21) + 9}, test::ew::sgd_cases()[3], 1);
}

TEST(SgdCuda, SeveralParametersAtOnceEqualOneAtATime) {
  GA_REQUIRE_CUDA();
  test::ew::check_sgd_many(Device::CUDA, 800);
}

TEST(SgdCuda, NoFusedMultiplyAdd) {
  GA_REQUIRE_CUDA();
  Tensor p = Tensor::full({1}, 1.0f, DType::f32, Device::CUDA);
  const Tensor g = Tensor::full({1}, 1.0f + 0x1.0p-23f, DType::f32, Device::CUDA);
  SgdHyper h;
  h.lr = 1.0f - 0x1.0p-23f;
  SgdUpdateArgs a;
  a.param = &p;
  a.grad = &g;
  sgd_update(a, h);
  EXPECT_EQ(p.to_vector()[0], 0.0f) << "p - lr * g must round lr * g first (no FMA)";
}

TEST(SgdCuda, SkipIfLeavesEverythingUnchanged) {
  GA_REQUIRE_CUDA();
  test::ew::check_sgd_skip_if(Device::CUDA);
}

TEST(SgdCuda, BadArgumentsAreErrors) {
  GA_REQUIRE_CUDA();
  const Device dev = Device::CUDA;
  Tensor p = Tensor::zeros({4}, DType::f32, dev);
  const Tensor g = Tensor::zeros({4}, DType::f32, dev);
  const Tensor g_cpu = Tensor::zeros({4});
  const Tensor scale_cpu = Tensor::full({1}, 1.0f);
  Tensor buf_cpu = Tensor::zeros({4});
  SgdUpdateArgs a;
  a.param = &p;
  a.grad = &g_cpu;
  SgdHyper h;
  GA_EXPECT_ERROR(sgd_update(a, h), "one device");
  a.grad = &g;
  a.grad_scale = &scale_cpu;
  GA_EXPECT_ERROR(sgd_update(a, h), "one device");
  a.grad_scale = nullptr;
  a.momentum_buf = &buf_cpu;
  h.momentum = 0.5f;
  GA_EXPECT_ERROR(sgd_update(a, h), "one device");
  a.momentum_buf = nullptr;
  h.momentum = 0.0f;
  NonFiniteFlag host_flag(Device::CPU);
  a.skip_if = &host_flag;
  GA_EXPECT_ERROR(sgd_update(a, h), "skip_if flag");
}

}  // namespace
}  // namespace gradaccum
