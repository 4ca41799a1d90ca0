#include "kernels/sgd.h"

#include <gtest/gtest.h>

#include "elementwise_checks.h"

namespace gradaccum {
namespace {

using test::ew::test_shapes;

TEST(Sgd, MatchesPytorchRuleExactly) {
  std::uint64_t seed = 700;
  for (const test::ew::SgdCase& c : test::ew::sgd_cases()) {
    for (const Shape& s : test_shapes())
      test::ew::check_sgd(Device::CPU, s, c, seed += 50);
  }
}

TEST(Sgd, LargeTensorsUseThreadsCorrectly) {
  test::ew::check_sgd(Device::CPU, {(std::int64_t{1} << 20) + 9}, test::ew::sgd_cases()[5], 1);
}

struct HandCase {
  SgdHyper h;
  std::vector<float> params;   // after step 1 (first_step) and step 2
  std::vector<float> buffers;  // likewise
};

// p = 1, grad = 0.5 on both steps; dyadic values, so every number below is exact and can be
// checked by hand against PyTorch's rule (torch.optim.SGD):
//   g = grad + wd * p; buf = g on the first step, else momentum * buf + (1 - dampening) * g;
//   g = nesterov ? g + momentum * buf : buf; p = p - lr * g.
TEST(Sgd, HandComputedPytorchSteps) {
  std::vector<HandCase> cases;
  SgdHyper damp;
  damp.lr = 0.5f;
  damp.momentum = 0.5f;
  damp.dampening = 0.5f;
  damp.weight_decay = 0.25f;
  // step 1: g = 0.5 + 0.25 = 0.75, buf = 0.75 (no dampening on the first step), p = 0.625
  // step 2: g = 0.5 + 0.15625 = 0.65625, buf = 0.375 + 0.328125 = 0.703125,
  //         p = 0.625 - 0.3515625 = 0.2734375
  cases.push_back({damp, {0.625f, 0.2734375f}, {0.75f, 0.703125f}});
  SgdHyper nest;
  nest.lr = 0.5f;
  nest.momentum = 0.5f;
  nest.weight_decay = 0.25f;
  nest.nesterov = true;
  // step 1: g = 0.75, buf = 0.75, g = 0.75 + 0.375 = 1.125, p = 1 - 0.5625 = 0.4375
  // step 2: g = 0.5 + 0.109375 = 0.609375, buf = 0.375 + 0.609375 = 0.984375,
  //         g = 0.609375 + 0.4921875 = 1.1015625, p = 0.4375 - 0.55078125 = -0.11328125
  cases.push_back({nest, {0.4375f, -0.11328125f}, {0.75f, 0.984375f}});
  SgdHyper plain;
  plain.lr = 0.5f;
  // p = 1 - 0.25 = 0.75, then 0.5
  cases.push_back({plain, {0.75f, 0.5f}, {}});
  for (const HandCase& c : cases) {
    Tensor p = Tensor::full({1}, 1.0f);
    Tensor buf = test::poisoned({1});
    const Tensor grad = Tensor::full({1}, 0.5f);
    for (int step = 0; step < 2; ++step) {
      SgdUpdateArgs a;
      a.param = &p;
      a.grad = &grad;
      a.momentum_buf = c.h.momentum != 0.0f ? &buf : nullptr;
      a.first_step = step == 0;
      sgd_update(a, c.h);
      EXPECT_EQ(p.to_vector()[0], c.params[static_cast<std::size_t>(step)]) << "step " << step;
      if (!c.buffers.empty()) {
        EXPECT_EQ(buf.to_vector()[0], c.buffers[static_cast<std::size_t>(step)]);
      }
    }
  }
}

TEST(Sgd, SeveralParametersAtOnceEqualOneAtATime) {
  test::ew::check_sgd_many(Device::CPU, 800);
}

TEST(Sgd, NoFusedMultiplyAdd) {
  // p + (-lr) * g with the product rounded first: for lr = 1 - 2^-23 ... choose values where an
  // FMA would differ: p = 1, g = 1 + 2^-23, lr = 1 - 2^-23: lr * g = 1 - 2^-46 exactly, which
  // rounds to 1 in f32, so p - lr*g = 0; an FMA would give 2^-46.
  Tensor p = Tensor::full({1}, 1.0f);
  const Tensor g = Tensor::full({1}, 1.0f + 0x1.0p-23f);
  SgdHyper h;
  h.lr = 1.0f - 0x1.0p-23f;
  SgdUpdateArgs a;
  a.param = &p;
  a.grad = &g;
  sgd_update(a, h);
  EXPECT_EQ(p.to_vector()[0], 0.0f);
}

TEST(Sgd, SkipIfLeavesEverythingUnchanged) {
  test::ew::check_sgd_skip_if(Device::CPU);
}

TEST(Sgd, KahanCompensationIsAddedToTheGradient) {
  // grad + comp: the compensated sum is what the update uses.
  Tensor p = Tensor::full({1}, 1.0f);
  const Tensor grad = Tensor::full({1}, 1.0f);
  const Tensor comp = Tensor::full({1}, 0.5f);
  SgdHyper h;
  h.lr = 1.0f;
  SgdUpdateArgs a;
  a.param = &p;
  a.grad = &grad;
  a.grad_comp = &comp;
  sgd_update(a, h);
  EXPECT_EQ(p.to_vector()[0], -0.5f);
}

TEST(Sgd, BadArgumentsAreErrors) {
  const Device dev = Device::CPU;
  Tensor p = Tensor::zeros({4, 3}, DType::f32, dev);
  Tensor g = Tensor::zeros({4, 3}, DType::f32, dev);
  Tensor g16 = Tensor::zeros({4, 3}, DType::f16, dev);
  Tensor g_shape = Tensor::zeros({12}, DType::f32, dev);
  Tensor p16 = Tensor::zeros({4, 3}, DType::f16, dev);
  Tensor scale2 = Tensor::zeros({2}, DType::f32, dev);
  SgdHyper h;
  auto args = [&](const Tensor* grad) {
    SgdUpdateArgs a;
    a.param = &p;
    a.grad = grad;
    return a;
  };
  GA_EXPECT_ERROR(sgd_update(args(&g_shape), h), "shape");
  GA_EXPECT_ERROR(sgd_update(args(&g16), h), "expected grad of dtype f32");
  GA_EXPECT_ERROR(sgd_update(args(nullptr), h), "grad is required");
  SgdUpdateArgs a = args(&g);
  a.param = &p16;
  GA_EXPECT_ERROR(sgd_update(a, h), "expected param of dtype f32");
  a = args(&g);
  a.param_f16 = &g;
  GA_EXPECT_ERROR(sgd_update(a, h), "param_f16 of dtype f16");
  a = args(&g);
  a.grad_scale = &scale2;
  GA_EXPECT_ERROR(sgd_update(a, h), "f32 [1]");
  a = args(&g);
  a.grad_comp = &g_shape;
  GA_EXPECT_ERROR(sgd_update(a, h), "grad_comp of shape");
  SgdHyper hm;
  hm.momentum = 0.9f;
  GA_EXPECT_ERROR(sgd_update(args(&g), hm), "momentum_buf");
  a = args(&g);
  a.momentum_buf = &g_shape;
  GA_EXPECT_ERROR(sgd_update(a, hm), "momentum_buf of shape");
  SgdHyper bad;
  bad.lr = -1.0f;
  GA_EXPECT_ERROR(sgd_update(args(&g), bad), "learning rate");
  SgdHyper nest;
  nest.nesterov = true;
  GA_EXPECT_ERROR(sgd_update(args(&g), nest), "nesterov");
  nest.momentum = 0.9f;
  nest.dampening = 0.1f;
  a = args(&g);
  a.momentum_buf = &g;
  GA_EXPECT_ERROR(sgd_update(a, nest), "nesterov");
}

}  // namespace
}  // namespace gradaccum
