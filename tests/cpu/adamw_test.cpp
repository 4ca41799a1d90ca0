// AdamW: the fused update against its rule and float64 and against PyTorch's own bits
// (tests/data/torch_adamw/update_*), the optimizer against PyTorch's training for every split of
// the batch (tests/data/torch_adamw/<case>), skipped steps, bad input and state dicts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "adamw_checks.h"
#include "resume_util.h"

namespace gradaccum {
namespace {

using test::adamw::adamw_cases;
using test::ew::test_shapes;

// ---- the update kernel ----------------------------------------------------------------------

TEST(AdamWUpdate, MatchesPytorchRuleExactlyAndFloat64WithinF32Bounds) {
  std::uint64_t seed = 900;
  for (const test::adamw::AdamwCase& c : adamw_cases()) {
    for (const Shape& s : test_shapes())
      test::adamw::check_adamw(Device::CPU, s, c, seed += 50);
  }
}

TEST(AdamWUpdate, LargeTensorsUseThreadsCorrectly) {
  test::adamw::check_adamw(Device::CPU, {(std::int64_t{1} << 20) + 9}, adamw_cases()[4], 1);
}

TEST(AdamWUpdate, GivesPytorchsBitsOnItsFixtures) {
  for (const std::string& name : test::adamw::torch_update_cases())
    test::adamw::check_torch_update(Device::CPU, name);
}

TEST(AdamWUpdate, SeveralParametersAtOnceEqualOneAtATime) {
  test::adamw::check_adamw_many(Device::CPU, 800);
}

TEST(AdamWUpdate, SkipIfLeavesEverythingUnchanged) {
  test::adamw::check_adamw_skip_if(Device::CPU);
}

TEST(AdamWUpdate, BadArgumentsAreErrors) {
  test::adamw::check_adamw_errors(Device::CPU);
}

TEST(AdamWUpdate, NoFusedMultiplyAdd) {
  test::adamw::check_adamw_no_fma(Device::CPU);
}

// ---- the optimizer against PyTorch's training -------------------------------------------------

struct Split {
  const char* name;
  std::vector<std::int64_t> sizes;
};

const Split kSplits[] = {{"1x12", {12}},
                         {"12x1", std::vector<std::int64_t>(12, 1)},
                         {"5+4+3", {5, 4, 3}},
                         {"6+6", {6, 6}},
                         {"1+11", {1, 11}}};

// float32 rounding: 2e-6 relative to |want| (floor 1e-2), as the SGD fixtures. The window sums
// the gradients in its own order and divides once at the step, PyTorch backpropagates the
// mean: a bias gradient that nearly cancels differs in its last bits, and Adam's normalisation
// (lr / eps = 20 in mean_betas_eps) turns that into ~1e-6 of the parameter; the plain step()
// path, PyTorch's order, stays within 1.2e-7.
constexpr double kTorchTolerance = 2e-6;

struct Fixture {
  explicit Fixture(const std::string& name) : dir(test::adamw::fixture_dir(name)) {
    cfg = test::adamw::read_config(dir);
    reduction = cfg["reduction"] == "sum" ? Reduction::Sum : Reduction::Mean;
    options = test::adamw::options_of(cfg);
    steps = std::stoi(cfg["steps"]);
    batch = test::load_fixture_steps(dir, x, y);
    nn::Sequential expected = test::make_mlp(5, 7, 3, 0);
    expected.load(dir + "/final");
    want = test::snapshot(expected.parameters());
  }
  nn::Sequential initial() const {
    nn::Sequential model = test::make_mlp(5, 7, 3, 0);
    model.load(dir + "/init");
    return model;
  }
  std::string dir;
  std::map<std::string, std::string> cfg;
  Reduction reduction = Reduction::Mean;
  optim::AdamWOptions options;
  int steps = 0;
  Tensor x, y;
  std::int64_t batch = 0;
  std::vector<std::vector<float>> want;
};

class TorchAdamW : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchAdamW, SameParametersForEverySplit) {
  const Fixture f(GetParam());
  ASSERT_EQ(f.cfg.at("torch").rfind("1.13", 0), 0u) << "fixtures from PyTorch 1.13";
  double worst = 0.0;
  for (const Split& split : kSplits) {
    for (bool deterministic : {false, true}) {
      nn::Sequential model = f.initial();
      GemmConfig gc;
      gc.deterministic = deterministic;
      model.set_gemm_config(gc);
      optim::AccumulationWindow window(model.parameters());
      optim::AdamW opt(model.parameters(), f.options);
      for (int s = 0; s < f.steps; ++s) {
        const Tensor xs = f.x.rows(s * f.batch, (s + 1) * f.batch);
        const Tensor ys = f.y.rows(s * f.batch, (s + 1) * f.batch);
        const optim::StepReport r =
            test::window_step(model, window, opt, xs, ys, split.sizes, f.reduction);
        EXPECT_TRUE(r.applied);
        EXPECT_EQ(r.samples, f.batch);
        EXPECT_EQ(r.micro_batches, static_cast<std::int64_t>(split.sizes.size()));
      }
      EXPECT_EQ(opt.step_count(), f.steps);
      const double err = test::max_rel_diff(test::snapshot(model.parameters()), f.want, 1e-2);
      worst = std::max(worst, err);
      EXPECT_LE(err, kTorchTolerance) << GetParam() << " split " << split.name
                                      << (deterministic ? " (deterministic GEMM)" : "");
    }
  }
  std::printf("%s: worst relative difference from PyTorch over all splits: %.2e\n",
              GetParam().c_str(), worst);
}

TEST_P(TorchAdamW, PlainStepAfterBackwardIsPytorchsStep) {
  const Fixture f(GetParam());
  nn::Sequential model = f.initial();
  optim::AdamW opt(model.parameters(), f.options);
  nn::L1Loss loss_fn(f.reduction);
  for (int s = 0; s < f.steps; ++s) {
    opt.zero_grad();
    autograd::Variable xs(f.x.rows(s * f.batch, (s + 1) * f.batch));
    autograd::Variable ys(f.y.rows(s * f.batch, (s + 1) * f.batch));
    loss_fn(model(xs), ys).backward();
    opt.step();
  }
  EXPECT_EQ(opt.step_count(), f.steps);
  const double err = test::max_rel_diff(test::snapshot(model.parameters()), f.want, 1e-2);
  EXPECT_LE(err, kTorchTolerance);
  std::printf("%s: plain step(), relative difference from PyTorch: %.2e\n", GetParam().c_str(),
              err);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TorchAdamW,
                         ::testing::Values("mean_plain", "mean_weight_decay", "mean_amsgrad",
                                           "sum_plain", "mean_betas_eps"));

// ---- options, skipped steps ------------------------------------------------------------------

using test::message_of;

TEST(AdamWOptions, DefaultsArePytorchs) {
  const optim::AdamWOptions o;
  EXPECT_EQ(o.lr(), 1e-3);
  EXPECT_EQ(o.beta1(), 0.9);
  EXPECT_EQ(o.beta2(), 0.999);
  EXPECT_EQ(o.eps(), 1e-8);
  EXPECT_EQ(o.weight_decay(), 1e-2);
  EXPECT_FALSE(o.amsgrad());
}

TEST(AdamWOptions, InvalidOptionsThrowNamingTheOptionAndItsRange) {
  nn::Linear fc(2, 2);
  auto make = [&](const optim::AdamWOptions& o) { optim::AdamW opt(fc.parameters(), o); };
  EXPECT_NO_THROW(make(optim::AdamWOptions(0.0).betas(0.0, 0.0).eps(0.0).weight_decay(0.0)));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const struct {
    optim::AdamWOptions o;
    const char* needle;
  } bad[] = {
      {optim::AdamWOptions(-1e-3), "invalid learning rate -0.001 (expected a finite lr >= 0)"},
      {optim::AdamWOptions(nan), "invalid learning rate"},
      {optim::AdamWOptions().eps(-1e-8), "invalid eps -1e-08 (expected a finite eps >= 0)"},
      {optim::AdamWOptions().betas(1.0, 0.999), "beta1 (betas[0]) 1 (expected 0 <= beta1 < 1)"},
      {optim::AdamWOptions().betas(-0.5, 0.999), "beta1 (betas[0]) -0.5"},
      {optim::AdamWOptions().betas(0.9, 1.5), "beta2 (betas[1]) 1.5 (expected 0 <= beta2 < 1)"},
      {optim::AdamWOptions().betas(0.9, nan), "beta2"},
      {optim::AdamWOptions().weight_decay(-0.1), "weight_decay -0.1 (expected a finite"},
  };
  for (const auto& b : bad) {
    const std::string m = message_of([&] { make(b.o); });
    EXPECT_NE(m.find("AdamW: "), std::string::npos) << m;
    EXPECT_NE(m.find(b.needle), std::string::npos) << m;
  }
  optim::AdamW opt(fc.parameters(), optim::AdamWOptions(0.1));
  EXPECT_NE(message_of([&] { opt.set_lr(-1.0); }).find("learning rate -1"), std::string::npos);
  EXPECT_EQ(opt.options().lr(), 0.1);
  opt.set_lr(0.5);
  EXPECT_EQ(opt.options().lr(), 0.5);
  EXPECT_THROW(optim::AdamW({}, optim::AdamWOptions()), Error);
  auto twice = fc.parameters();
  twice.push_back(twice.front());
  EXPECT_NE(message_of([&] { optim::AdamW o(twice, optim::AdamWOptions()); }).find("twice"),
            std::string::npos);
  autograd::Variable frozen(Tensor::zeros({2}), /*requires_grad=*/false, "frozen");
  EXPECT_THROW(optim::AdamW({frozen}, optim::AdamWOptions()), Error);
  EXPECT_THROW(static_cast<void>(opt.master_weight(2)), Error);
}

// A batch whose row `row` is NaN: its micro-batch overflows.
Tensor with_nan_row(const Tensor& x, std::int64_t row) {
  auto v = x.to_vector();
  for (std::int64_t j = 0; j < x.size(1); ++j)
    v[static_cast<std::size_t>(row * x.size(1) + j)] = std::numeric_limits<float>::quiet_NaN();
  return Tensor::from_vector(v, x.shape());
}

TEST(AdamWStep, ASkippedStepChangesNothingNotEvenTheStepCount) {
  const optim::WindowOptions wo =
      optim::WindowOptions().loss_scaling(optim::LossScaling::dynamic(1024.0f, 2.0f, 0.5f, 2));
  const optim::AdamWOptions o = optim::AdamWOptions(0.01).amsgrad(true);
  nn::Sequential model = test::make_mlp(6, 16, 3, 77);
  optim::AccumulationWindow window(model.parameters(), wo);
  optim::AdamW opt(model.parameters(), o);
  nn::Sequential ref = test::make_mlp(6, 16, 3, 77);
  optim::AccumulationWindow ref_window(ref.parameters(), wo);
  optim::AdamW ref_opt(ref.parameters(), o);
  const std::string state_before = opt.state_dict().serialize();
  const auto before = test::snapshot(model.parameters());
  const Tensor bad = with_nan_row(test::random_tensor({8, 6}, 1000), 6);
  const optim::StepReport r = test::window_step(
      model, window, opt, bad, test::random_tensor({8, 3}, 2000), {4, 4}, Reduction::Mean);
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(opt.step_count(), 0);
  EXPECT_EQ(opt.state_dict().serialize(), state_before);
  EXPECT_EQ(test::snapshot(model.parameters()), before);
  // The next, clean steps are those of an optimizer that never saw the skipped one: the loss
  // scales differ by a power of two, which changes no bit of the unscaled gradients.
  for (int s = 0; s < 3; ++s) {
    const Tensor x = test::random_tensor({8, 6}, 3000 + s),
                 y = test::random_tensor({8, 3}, 4000 + s);
    EXPECT_TRUE(test::window_step(model, window, opt, x, y, {4, 4}, Reduction::Mean).applied);
    test::window_step(ref, ref_window, ref_opt, x, y, {4, 4}, Reduction::Mean);
  }
  EXPECT_EQ(opt.step_count(), 3);
  EXPECT_EQ(test::snapshot(model.parameters()), test::snapshot(ref.parameters()));
  EXPECT_EQ(opt.state_dict().serialize(), ref_opt.state_dict().serialize());
}

TEST(AdamWStep, AParameterOutsideTheWindowIsAnError) {
  nn::Sequential model = test::make_mlp(6, 16, 3, 1), other = test::make_mlp(6, 16, 3, 2);
  optim::AccumulationWindow window(model.parameters());
  optim::AdamW opt(other.parameters(), optim::AdamWOptions());
  window.backward(nn::L1Loss()(model(autograd::Variable(test::random_tensor({2, 6}, 1))),
                               autograd::Variable(test::random_tensor({2, 3}, 2))));
  EXPECT_NE(message_of([&] { opt.step(window); }).find("AdamW::step(window): parameter"),
            std::string::npos);
  EXPECT_EQ(opt.step_count(), 0);
}

TEST(AdamWStep, F16ParametersStepTheirF32Masters) {
  nn::Sequential model = test::make_mlp(6, 16, 3, 9);
  model.to(DType::f16);
  optim::AccumulationWindow window(model.parameters());
  optim::AdamW opt(model.parameters(), optim::AdamWOptions(0.01));
  const Tensor x = test::random_tensor({8, 6}, 1, DType::f16);
  const Tensor y = test::random_tensor({8, 3}, 2, DType::f16);
  test::window_step(model, window, opt, x, y, {3, 5}, Reduction::Mean);
  for (std::size_t i = 0; i < model.parameters().size(); ++i) {
    const Tensor& master = opt.master_weight(i);
    ASSERT_EQ(master.dtype(), DType::f32);
    test::ew::expect_same_bits(model.parameters()[i].value(), master.to(DType::f16),
                               "the f16 copy of master " + std::to_string(i));
  }
}

// ---- state dicts ------------------------------------------------------------------------------

// 2 steps, a state file loaded into a fresh run (made with other options), 2 more steps: the
// bytes of 4 steps straight (parameters, moments, masters, step count, loss scale).
TEST(AdamWState, F32ContinuesBitForBit) {
  test::expect_optimizer_resume_is_bit_identical<optim::AdamW>(
      Device::CPU, DType::f32, {}, optim::AdamWOptions(0.01), optim::AdamWOptions(0.5), 2, 4);
}

TEST(AdamWState, F16WithAmsgradAndADynamicLossScaleContinuesBitForBit) {
  test::expect_optimizer_resume_is_bit_identical<optim::AdamW>(
      Device::CPU, DType::f16,
      optim::WindowOptions().loss_scaling(optim::LossScaling::dynamic(1024, 2, 0.5, 2)),
      optim::AdamWOptions(0.01).betas(0.8, 0.9).eps(1e-6).weight_decay(0.1).amsgrad(true),
      optim::AdamWOptions(0.5), 2, 4);
}

// A copy of `s` without `drop` and with `replace` set (an empty name: nothing replaced).
StateDict edited(const StateDict& s, const std::string& drop, const std::string& replace = "",
                 const Tensor& with = Tensor()) {
  StateDict out;
  for (const auto& [k, v] : s.texts())
    if (k != drop) out.set_text(k, v);
  for (const auto& [k, t] : s.tensors())
    if (k != drop) out.set_tensor(k, k == replace ? with : t);
  return out;
}

TEST(AdamWState, AMismatchedStateIsRefusedWithOneLineAndChangesNothing) {
  nn::Sequential model = test::make_mlp(5, 7, 3, 1);
  optim::AdamW opt(model.parameters(), optim::AdamWOptions(0.01).amsgrad(true));
  optim::AccumulationWindow window(model.parameters());
  test::window_step(model, window, opt, test::random_tensor({4, 5}, 1),
                    test::random_tensor({4, 3}, 2), {4}, Reduction::Mean);
  const StateDict good = opt.state_dict();

  nn::Sequential wider = test::make_mlp(6, 7, 3, 1);
  optim::AdamW sgd_like(wider.parameters(), optim::AdamWOptions(0.02));
  nn::Sequential half = test::make_mlp(5, 7, 3, 1);
  half.to(DType::f16);
  optim::AdamW half_opt(half.parameters(), optim::AdamWOptions(0.02));
  optim::SGD sgd(model.parameters(), optim::SGDOptions(0.1));
  const std::vector<autograd::Variable> params = model.parameters();
  optim::AdamW two({params[0], params[1]}, optim::AdamWOptions(0.02));

  // Each refusal: one line naming what differs, and the target exactly as it was.
  auto expect_refused = [](optim::AdamW& target, const StateDict& state,
                           const std::vector<std::string>& needles) {
    const std::string before = target.state_dict().serialize();
    const double lr = target.options().lr();
    const std::string m = message_of([&] { target.load_state_dict(state); });
    for (const std::string& needle : needles)
      EXPECT_NE(m.find(needle), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
    EXPECT_EQ(target.state_dict().serialize(), before) << "a failed load changed the state";
    EXPECT_EQ(target.options().lr(), lr);
  };
  expect_refused(sgd_like, good, {"parameter 0 is [7, 5] f32 in the state, [7, 6] f32 here"});
  expect_refused(half_opt, good, {"[7, 5] f32 in the state, [7, 5] f16 here"});
  expect_refused(two, good, {"the state is for 4 parameters, this optimizer has 2"});
  expect_refused(sgd_like, sgd.state_dict(), {"not an AdamW optimizer's", "'(none)'"});
  expect_refused(two, edited(good, "step"), {"no value 'step'"});

  // Against the optimizer that saved it: a damaged state is refused; the good one loads.
  optim::AdamW same(model.parameters(), optim::AdamWOptions(0.02));
  expect_refused(same, edited(good, "max_exp_avg_sq.3"),
                 {"no tensor 'max_exp_avg_sq.3' for parameter 3"});
  expect_refused(same, edited(good, "", "exp_avg.2", Tensor::zeros({7})),
                 {"'exp_avg.2' is Tensor[7] f32 cpu; expected f32 [3, 7]"});
  expect_refused(same, edited(good, "", "exp_avg_sq.0", Tensor::zeros({7, 5}, DType::f16)),
                 {"'exp_avg_sq.0' is Tensor[7, 5] f16 cpu; expected f32 [7, 5]"});
  StateDict no_amsgrad = edited(good, "amsgrad");
  no_amsgrad.set_text("amsgrad", "0");
  expect_refused(same, no_amsgrad, {"an unexpected tensor 'max_exp_avg_sq.0'"});
  same.load_state_dict(good);
  EXPECT_EQ(same.state_dict().serialize(), good.serialize());
  EXPECT_EQ(same.step_count(), 1);
  EXPECT_TRUE(same.options().amsgrad());
}

}  // namespace
}  // namespace gradaccum
