// The autograd API: tape lifetime and errors, modules, parameter naming, save/load, SGD options.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <unistd.h>

#include "mlp_helpers.h"

namespace gradaccum::test {
namespace {

using autograd::Variable;

TEST(AutogradApi, BackwardTwiceThrowsBecauseTheTapeIsFreed) {
  nn::Sequential model = make_mlp(4, 8, 2, 1);
  Variable x(random_tensor({3, 4}, 10));
  Variable y(random_tensor({3, 2}, 11));
  Variable loss = nn::L1Loss()(model(x), y);
  loss.backward();
  try {
    loss.backward();
    FAIL() << "second backward did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already freed"), std::string::npos) << e.what();
  }
}

TEST(AutogradApi, UsingAFreedGraphInANewOpThrows) {
  nn::Linear fc(4, 3);
  Variable x(random_tensor({2, 4}, 1));
  Variable h = fc(x);
  Variable loss = autograd::l1_loss(h, Variable(random_tensor({2, 3}, 2)), Reduction::Sum);
  loss.backward();
  EXPECT_THROW(autograd::relu(h), Error);
}

TEST(AutogradApi, NonScalarBackwardNeedsASeed) {
  nn::Linear fc(4, 3);
  Variable y = fc(Variable(random_tensor({2, 4}, 1)));
  try {
    y.backward();
    FAIL() << "backward of a [2, 3] output without a seed did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("seed"), std::string::npos) << e.what();
  }
  // With a seed of the right shape it works; a wrong shape throws.
  EXPECT_THROW(y.backward(Tensor::full({3, 2}, 1.0f)), Error);
  y.backward(Tensor::full({2, 3}, 1.0f));
  EXPECT_TRUE(fc.weight().grad().defined());
}

TEST(AutogradApi, BackwardOfALeafOrWithoutGradThrows) {
  Variable leaf(random_tensor({1}, 1), true);
  EXPECT_THROW(leaf.backward(), Error);
  nn::Linear fc(4, 1);
  Variable y;
  {
    autograd::NoGradGuard no_grad;
    y = fc(Variable(random_tensor({1, 4}, 2)));
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(y.backward(), Error);
}

TEST(AutogradApi, MixingDtypesInOneOpThrows) {
  nn::Linear fc(4, 3);
  Variable x16(random_tensor({2, 4}, 1, DType::f16));
  try {
    fc(x16);
    FAIL() << "an f16 input to an f32 Linear did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dtype"), std::string::npos) << e.what();
  }
  Variable p(random_tensor({2, 3}, 2));
  Variable t16(random_tensor({2, 3}, 3, DType::f16));
  EXPECT_THROW(autograd::l1_loss(p, t16, Reduction::Mean), Error);
}

TEST(AutogradApi, MixingDevicesInOneOpThrows) {
  GA_REQUIRE_CUDA();
  nn::Linear fc(4, 3);
  Variable x(random_tensor({2, 4}, 1, DType::f32, Device::CUDA));
  try {
    fc(x);
    FAIL() << "a CUDA input to a CPU Linear did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device"), std::string::npos) << e.what();
  }
}

TEST(AutogradApi, GradientsAccumulateAcrossBackwards) {
  nn::Sequential model = make_mlp(4, 8, 2, 7);
  Variable x(random_tensor({3, 4}, 10));
  Variable y(random_tensor({3, 2}, 11));
  nn::L1Loss loss_fn(Reduction::Sum);
  loss_fn(model(x), y).backward();
  auto once = snapshot(model.parameters(), true);
  loss_fn(model(x), y).backward();
  auto twice = snapshot(model.parameters(), true);
  for (std::size_t i = 0; i < once.size(); ++i) {
    for (std::size_t j = 0; j < once[i].size(); ++j)
      EXPECT_EQ(twice[i][j], 2.0f * once[i][j]);
  }
  model.zero_grad();
  for (const auto& g : snapshot(model.parameters(), true)) {
    for (float v : g)
      EXPECT_EQ(v, 0.0f);
  }
}

// The gradient-ready hook (an overlapped data-parallel window's): each leaf once, as soon as no
// node left can change its gradient, and with the gradient it will keep.
struct FinalGradients {
  std::vector<const autograd::detail::VarData*> order;
  std::vector<std::vector<float>> at_report;
  autograd::BackwardOptions options() {
    autograd::BackwardOptions o;
    o.on_leaf_final = [this](const autograd::detail::VarData& leaf) {
      order.push_back(&leaf);
      at_report.push_back(leaf.grad.to_vector());
    };
    return o;
  }
};

TEST(AutogradApi, LeafFinalHookReportsEachParameterOnceWithItsFinalGradient) {
  nn::Sequential model = make_mlp(4, 8, 2, 7);
  nn::L1Loss loss_fn(Reduction::Sum);
  loss_fn(model(Variable(random_tensor({3, 4}, 1))), Variable(random_tensor({3, 2}, 2))).backward();
  FinalGradients seen;  // a second backward accumulates onto the first: the hook sees the sum
  loss_fn(model(Variable(random_tensor({3, 4}, 10))), Variable(random_tensor({3, 2}, 11)))
      .backward(seen.options());
  const std::vector<Variable> params = model.parameters();
  ASSERT_EQ(seen.order.size(), params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    // The backward finishes the last layer first: fc2's weight and bias before fc1's.
    const std::size_t at = static_cast<std::size_t>(
        std::find(seen.order.begin(), seen.order.end(), params[i].data().get()) -
        seen.order.begin());
    ASSERT_LT(at, seen.order.size()) << params[i].name() << " was not reported";
    EXPECT_EQ(i < 2 ? at >= 2 : at < 2, true) << params[i].name() << " reported at " << at;
    EXPECT_EQ(seen.at_report[at], params[i].grad().to_vector()) << params[i].name();
  }
}

TEST(AutogradApi, LeafFinalHookWaitsForEveryUseOfASharedLeaf) {
  // w is used by two layers: it is final only after the first layer's backward, which runs last.
  Variable w(random_tensor({4, 4}, 3), true, "w");
  Variable b(random_tensor({4}, 4), true, "b");
  Variable unused(random_tensor({2}, 5), true, "unused");
  Variable x(random_tensor({3, 4}, 6));
  Variable h = autograd::linear(autograd::linear(x, w, b, true), w, b);
  FinalGradients seen;
  autograd::l1_loss(h, Variable(random_tensor({3, 4}, 7)), Reduction::Mean)
      .backward(seen.options());
  ASSERT_EQ(seen.order.size(), 2u) << "w and b once each; a leaf off the tape is not reported";
  EXPECT_EQ(seen.at_report[0],
            seen.order[0] == w.data().get() ? w.grad().to_vector() : b.grad().to_vector());
  EXPECT_EQ(seen.at_report[1],
            seen.order[1] == w.data().get() ? w.grad().to_vector() : b.grad().to_vector());
  EXPECT_NE(seen.order[0], seen.order[1]);
}

TEST(AutogradApi, TwoGraphsMeetingInOneOpShareATape) {
  // Two independent branches recorded on two tapes meet in l1_loss: one backward covers both.
  nn::Linear a(3, 2), b(3, 2);
  Variable x(random_tensor({4, 3}, 5));
  Variable pa = a(x);
  Variable pb = b(x);
  Variable loss = autograd::l1_loss(pa, pb, Reduction::Sum);
  loss.backward();
  EXPECT_TRUE(a.weight().grad().defined());
  EXPECT_TRUE(b.weight().grad().defined());
  // d/dpb = -d/dpa, so with the same x the bias gradients are opposite.
  auto ga = a.bias().grad().to_vector();
  auto gb = b.bias().grad().to_vector();
  for (std::size_t i = 0; i < ga.size(); ++i)
    EXPECT_EQ(ga[i], -gb[i]);
}

TEST(AutogradApi, FusedAndUnfusedSequentialAgree) {
  nn::Sequential fused = make_mlp(5, 6, 2, 3);
  nn::Sequential plain = make_mlp(5, 6, 2, 3);
  plain.set_fuse_relu(false);
  Variable x(random_tensor({7, 5}, 1));
  Variable y(random_tensor({7, 2}, 2));
  nn::L1Loss loss_fn(Reduction::Mean);
  Variable lf = loss_fn(fused(x), y);
  Variable lp = loss_fn(plain(x), y);
  EXPECT_EQ(lf.item(), lp.item());
  lf.backward();
  lp.backward();
  EXPECT_LE(
      max_rel_diff(snapshot(fused.parameters(), true), snapshot(plain.parameters(), true), 1e-6),
      1e-6);
}

// A fused linear + ReLU output h feeding a linear layer (whose dX masks by h > 0 itself) and, as
// the target of the loss, an unmasked gradient: the ReLU's backward must still mask. The same
// graph built from an unfused linear and a separate relu (no mask skipped anywhere) gives the
// same gradients, bit for bit; and with the linear as the only consumer, too.
TEST(AutogradApi, ReluMaskSkippedOnlyWhenEveryGradientIsMasked) {
  GemmConfig det;
  det.deterministic = true;
  auto grads = [&](bool fused, bool second_consumer) {
    Variable x(random_tensor({9, 5}, 1));
    Variable w1(random_tensor({6, 5}, 2), true), b1(random_tensor({6}, 3), true);
    Variable w2(random_tensor({6, 6}, 4), true), b2(random_tensor({6}, 5), true);
    Variable h = fused ? autograd::linear(x, w1, b1, true, det)
                       : autograd::relu(autograd::linear(x, w1, b1, false, det));
    Variable out = autograd::linear(h, w2, b2, false, det);
    Variable target = second_consumer ? h : Variable(random_tensor({9, 6}, 6));
    autograd::l1_loss(out, target, Reduction::Sum).backward();
    return snapshot({w1, b1, w2, b2}, true);
  };
  for (bool second : {true, false}) {
    const auto fused = grads(true, second), plain = grads(false, second);
    ASSERT_EQ(fused.size(), plain.size());
    for (std::size_t i = 0; i < fused.size(); ++i) {
      EXPECT_EQ(fused[i], plain[i]) << "parameter " << i << (second ? ", two consumers" : "");
    }
  }
  // The second consumer does reach W1 (through the ReLU mask): the case tests something.
  EXPECT_NE(grads(true, true)[0], grads(true, false)[0]);
}

TEST(AutogradApi, ParameterNames) {
  nn::Sequential named = make_mlp(4, 8, 2, 1);
  std::vector<std::string> names;
  for (auto& [n, v] : named.named_parameters())
    names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));

  nn::Sequential unnamed({nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 2, /*bias=*/false)});
  names.clear();
  for (auto& [n, v] : unnamed.named_parameters())
    names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight"}));
  EXPECT_EQ(unnamed.parameters().size(), 3u);
}

TEST(AutogradApi, LinearOptionsAndInit) {
  nn::Linear fc(nn::LinearOptions(16, 3).bias(false).seed(42));
  EXPECT_FALSE(fc.bias().defined());
  EXPECT_EQ(fc.weight().shape(), Shape({3, 16}));
  // PyTorch's bound 1/sqrt(in) = 0.25; seeded, hence reproducible.
  for (float v : fc.weight().value().to_vector())
    EXPECT_LE(std::fabs(v), 0.25f);
  nn::Linear again(nn::LinearOptions(16, 3).bias(false).seed(42));
  EXPECT_EQ(fc.weight().value().to_vector(), again.weight().value().to_vector());
  EXPECT_THROW(nn::Linear(0, 3), Error);
  EXPECT_THROW(fc(Variable(random_tensor({2, 15}, 1))), Error);
}

TEST(AutogradApi, SaveAndLoadByName) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("gradaccum_save_" + std::to_string(::getpid()));
  nn::Sequential a = make_mlp(4, 8, 2, 1);
  nn::Sequential b = make_mlp(4, 8, 2, 99);
  a.save(dir.string());
  EXPECT_TRUE(std::filesystem::exists(dir / "fc1.weight.npy"));
  EXPECT_TRUE(std::filesystem::exists(dir / "fc2.bias.npy"));
  b.load(dir.string());
  EXPECT_EQ(snapshot(a.parameters()), snapshot(b.parameters()));
  nn::Sequential wrong = make_mlp(4, 9, 2, 1);
  EXPECT_THROW(wrong.load(dir.string()), Error);
  std::filesystem::remove_all(dir);
}

TEST(AutogradApi, ToF16KeepsF32Gradients) {
  nn::Sequential model = make_mlp(4, 8, 2, 1);
  model.to(DType::f16);
  EXPECT_EQ(model.dtype(), DType::f16);
  Variable x(random_tensor({3, 4}, 10, DType::f16));
  Variable y(random_tensor({3, 2}, 11, DType::f16));
  nn::L1Loss()(model(x), y).backward();
  for (const auto& p : model.parameters()) {
    EXPECT_EQ(p.dtype(), DType::f16);
    EXPECT_EQ(p.grad().dtype(), DType::f32);
  }
}

TEST(SgdOptions, InvalidOptionsThrowInTheConstructor) {
  nn::Linear fc(2, 2);
  auto make = [&](const optim::SGDOptions& o) { optim::SGD opt(fc.parameters(), o); };
  EXPECT_NO_THROW(make(optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(1e-4)));
  EXPECT_THROW(make(optim::SGDOptions(-0.1)), Error);
  EXPECT_THROW(make(optim::SGDOptions(std::nan(""))), Error);
  EXPECT_THROW(make(optim::SGDOptions(0.1).momentum(-0.5)), Error);
  EXPECT_THROW(make(optim::SGDOptions(0.1).weight_decay(-1e-4)), Error);
  EXPECT_THROW(make(optim::SGDOptions(0.1).nesterov(true)), Error);  // no momentum
  EXPECT_THROW(make(optim::SGDOptions(0.1).momentum(0.9).dampening(0.1).nesterov(true)), Error);
  EXPECT_THROW(optim::SGD({}, optim::SGDOptions(0.1)), Error);
  auto p = fc.parameters();
  p.push_back(p.front());
  EXPECT_THROW(optim::SGD(p, optim::SGDOptions(0.1)), Error);
}

TEST(SgdOptions, PlainStepIsPyTorchsUpdate) {
  // w ← w - lr·(g + wd·w) with momentum buffer b = g on the first step, then b = m·b + (1-d)·g.
  Variable w(Tensor::from_vector({1.0f, -2.0f}, {2}), true, "w");
  optim::SGD opt({w}, optim::SGDOptions(0.5).momentum(0.5).dampening(0.25).weight_decay(0.1));
  w.grad() = Tensor::from_vector({0.5f, 1.0f}, {2});
  opt.step();
  // g = [0.6, 0.8]; b = g; w = [1 - 0.3, -2 - 0.4]
  EXPECT_FLOAT_EQ(w.value().to_vector()[0], 0.7f);
  EXPECT_FLOAT_EQ(w.value().to_vector()[1], -2.4f);
  opt.step();
  // g = [0.5 + 0.07, 1 - 0.24] = [0.57, 0.76]; b = 0.5·[0.6, 0.8] + 0.75·g
  const float b0 = 0.5f * 0.6f + 0.75f * 0.57f, b1 = 0.5f * 0.8f + 0.75f * 0.76f;
  EXPECT_NEAR(w.value().to_vector()[0], 0.7f - 0.5f * b0, 1e-6);
  EXPECT_NEAR(w.value().to_vector()[1], -2.4f - 0.5f * b1, 1e-6);
}

}  // namespace
}  // namespace gradaccum::test
