// Micro-batching, exact: k micro-batches of any sizes give the step of one batch of all their
// samples (mean and sum, same learning rate); the per-micro-batch normalisation does not on
// uneven windows; the overflow policies; errors that leave the window intact.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/half.h"
#include "kernels/window_scalars.h"
#include "elementwise_checks.h"
#include "mlp_helpers.h"

namespace gradaccum::test {
namespace {

using autograd::Variable;
using optim::AccumulationWindow;
using optim::LossScaling;
using optim::Normalization;
using optim::OverflowPolicy;
using optim::SGD;
using optim::SGDOptions;
using optim::StepReport;
using optim::WindowOptions;

constexpr std::int64_t kIn = 5, kHidden = 7, kOut = 3, kBatch = 24;

struct TrainResult {
  std::vector<std::vector<float>> params;
  std::vector<StepReport> reports;
};

// `steps` steps of the MLP over fresh batches of kBatch samples, each split as `split`.
TrainResult train(const std::vector<std::int64_t>& split, Reduction reduction, int steps,
                  const WindowOptions& wo = {},
                  const SGDOptions& so = SGDOptions(0.05).momentum(0.9),
                  bool deterministic = false) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
  GemmConfig gc;
  gc.deterministic = deterministic;
  model.set_gemm_config(gc);
  AccumulationWindow window(model.parameters(), wo);
  SGD opt(model.parameters(), so);
  TrainResult run;
  for (int s = 0; s < steps; ++s) {
    Tensor x = random_tensor({kBatch, kIn}, 1000 + s);
    Tensor y = random_tensor({kBatch, kOut}, 2000 + s);
    run.reports.push_back(window_step(model, window, opt, x, y, split, reduction));
  }
  run.params = snapshot(model.parameters());
  return run;
}

const std::vector<std::vector<std::int64_t>> kSplits = {
    {24}, {12, 12}, {6, 6, 6, 6}, std::vector<std::int64_t>(24, 1), {7, 7, 7, 3}, {20, 1, 3}};

TEST(Accumulation, AnySplitGivesTheBatchStep) {
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    // The same learning rate whatever the split; for a sum, one scaled to its 72x larger
    // gradients (rounding then stays at float32's level relative to the parameters).
    const SGDOptions so = SGDOptions(r == Reduction::Mean ? 0.05 : 0.001).momentum(0.9);
    const TrainResult one = train({24}, r, 3, {}, so);
    for (const auto& split : kSplits) {
      const TrainResult k = train(split, r, 3, {}, so);
      EXPECT_LE(max_rel_diff(k.params, one.params), 2e-6)
          << reduction_name(r) << ", " << split.size() << " micro-batches";
      for (const StepReport& rep : k.reports) {
        EXPECT_TRUE(rep.applied);
        EXPECT_EQ(rep.samples, kBatch);
        EXPECT_EQ(rep.elements, kBatch * kOut);
        EXPECT_EQ(rep.micro_batches, static_cast<std::int64_t>(split.size()));
      }
    }
  }
}

TEST(Accumulation, DeterministicGemmMakesEverySplitBitIdentical) {
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const TrainResult one = train({24}, r, 3, {}, SGDOptions(0.05).momentum(0.9), true);
    for (const auto& split : kSplits) {
      const TrainResult k = train(split, r, 3, {}, SGDOptions(0.05).momentum(0.9), true);
      EXPECT_EQ(k.params, one.params)
          << reduction_name(r) << ", " << split.size() << " micro-batches";
    }
  }
}

TEST(Accumulation, KahanCompensationAgreesWithTheBatchStep) {
  WindowOptions kahan = WindowOptions().compensation(optim::Compensation::Kahan);
  const TrainResult one = train({24}, Reduction::Mean, 3);
  const TrainResult k = train({7, 7, 7, 3}, Reduction::Mean, 3, kahan);
  EXPECT_LE(max_rel_diff(k.params, one.params), 1e-6);
}

// The effective gradient of one step: with lr = 1 and plain SGD, w_before - w_after.
std::vector<double> step_gradient(const std::vector<std::int64_t>& split, Reduction r,
                                  Normalization n, std::int64_t offset = 0) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
  AccumulationWindow window(model.parameters(), WindowOptions().normalization(n));
  SGD opt(model.parameters(), SGDOptions(1.0));
  const auto before = flatten(snapshot(model.parameters()));
  Tensor x = random_tensor({kBatch, kIn}, 1000);
  Tensor y = random_tensor({kBatch, kOut}, 2000);
  std::int64_t total = 0;
  for (auto s : split)
    total += s;
  window_step(model, window, opt, x.rows(offset, offset + total), y.rows(offset, offset + total),
              split, r);
  auto after = flatten(snapshot(model.parameters()));
  for (std::size_t i = 0; i < after.size(); ++i)
    after[i] = before[i] - after[i];
  return after;
}

double rel_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

TEST(Accumulation, PerMicroBatchNormalisationIsWrongOnUnevenWindows) {
  // 12 samples as 9 + 3, mean. The batch gradient weighs every sample 1/12 (per output); the
  // per-micro-batch recipe weighs the 9 samples (1/2)(1/9) = 1/18 and the 3 samples
  // (1/2)(1/3) = 1/6: the small micro-batch counts twice, the large one 2/3.
  const std::vector<std::int64_t> uneven = {9, 3};
  const auto exact = step_gradient(uneven, Reduction::Mean, Normalization::Window);
  const auto per_mb = step_gradient(uneven, Reduction::Mean, Normalization::MicroBatch);
  const auto one_batch = step_gradient({12}, Reduction::Mean, Normalization::Window);
  // Sum gradients of each micro-batch alone.
  const auto g1 = step_gradient({9}, Reduction::Sum, Normalization::Window, 0);
  const auto g2 = step_gradient({3}, Reduction::Sum, Normalization::Window, 9);
  std::vector<double> want_exact(g1.size()), want_mb(g1.size());
  for (std::size_t i = 0; i < g1.size(); ++i) {
    want_exact[i] = (g1[i] + g2[i]) / (12.0 * kOut);
    want_mb[i] = 0.5 * (g1[i] / (9.0 * kOut) + g2[i] / (3.0 * kOut));
  }
  EXPECT_LE(rel_distance(exact, one_batch), 1e-6);
  EXPECT_LE(rel_distance(exact, want_exact), 1e-5);
  EXPECT_LE(rel_distance(per_mb, want_mb), 1e-5);
  const double off = rel_distance(per_mb, exact);
  std::printf("per-micro-batch normalisation on 9+3 (mean): step off by %.1f%% (relative L2)\n",
              100.0 * off);
  EXPECT_GT(off, 0.05) << "the per-micro-batch step should visibly differ on 9 + 3";

  // On an even split of a mean it agrees with the batch (what makes the recipe look right).
  const auto even_mb = step_gradient({6, 6}, Reduction::Mean, Normalization::MicroBatch);
  EXPECT_LE(rel_distance(even_mb, one_batch), 1e-6);
  // For a sum it divides by k: half the batch gradient on 6 + 6.
  const auto sum_exact = step_gradient({12}, Reduction::Sum, Normalization::Window);
  auto sum_mb = step_gradient({6, 6}, Reduction::Sum, Normalization::MicroBatch);
  for (double& v : sum_mb)
    v *= 2.0;
  EXPECT_LE(rel_distance(sum_mb, sum_exact), 1e-6);
}

// A batch whose rows [bad, bad + 1) are NaN: the micro-batch holding it overflows.
void poison_row(Tensor& x, std::int64_t row) {
  auto v = x.to_vector();
  for (std::int64_t j = 0; j < x.size(1); ++j) {
    v[static_cast<std::size_t>(row * x.size(1) + j)] = std::numeric_limits<float>::quiet_NaN();
  }
  x = Tensor::from_vector(v, x.shape());
}

TEST(Accumulation, DropMicroBatchEqualsTheStepOverTheSurvivors) {
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const WindowOptions drop = WindowOptions()
                                   .overflow(OverflowPolicy::DropMicroBatch)
                                   .loss_scaling(LossScaling::dynamic(1024.0f));
    nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
    AccumulationWindow window(model.parameters(), drop);
    SGD opt(model.parameters(), SGDOptions(0.05).momentum(0.9));
    Tensor x = random_tensor({12, kIn}, 1000);
    Tensor y = random_tensor({12, kOut}, 2000);
    poison_row(x, 5);  // in the second micro-batch of 4 + 4 + 4
    const StepReport rep = window_step(model, window, opt, x, y, {4, 4, 4}, r);
    EXPECT_TRUE(rep.applied);
    EXPECT_EQ(rep.micro_batches, 2);
    EXPECT_EQ(rep.micro_batches_dropped, 1);
    EXPECT_EQ(rep.samples, 8);
    EXPECT_EQ(rep.elements, 8 * kOut);
    EXPECT_EQ(rep.loss_scale, 512.0f);  // backed off once, for the third micro-batch
    EXPECT_TRUE(std::isfinite(rep.loss));

    // The same step over the 8 surviving samples, as one batch, no loss scaling.
    nn::Sequential ref = make_mlp(kIn, kHidden, kOut, 77);
    AccumulationWindow ref_window(ref.parameters());
    SGD ref_opt(ref.parameters(), SGDOptions(0.05).momentum(0.9));
    Tensor xs = Tensor::empty({8, kIn}), ys = Tensor::empty({8, kOut});
    {
      auto xv = x.to_vector(), yv = y.to_vector();
      std::vector<float> xk(xv.begin(), xv.begin() + 4 * kIn),
          yk(yv.begin(), yv.begin() + 4 * kOut);
      xk.insert(xk.end(), xv.begin() + 8 * kIn, xv.end());
      yk.insert(yk.end(), yv.begin() + 8 * kOut, yv.end());
      xs = Tensor::from_vector(xk, {8, kIn});
      ys = Tensor::from_vector(yk, {8, kOut});
    }
    const StepReport ref_rep = window_step(ref, ref_window, ref_opt, xs, ys, {8}, r);
    EXPECT_EQ(ref_rep.samples, 8);
    // Different sums of the same survivors (4 + 4 against 8 rows, with and without the scale):
    // a few f32 roundings apart (1.05e-6 on OpenBLAS's AVX-512 kernels).
    EXPECT_LE(max_rel_diff(snapshot(model.parameters()), snapshot(ref.parameters())), 4e-6)
        << reduction_name(r);
    EXPECT_NEAR(rep.loss, ref_rep.loss, 1e-6 * std::fabs(ref_rep.loss));
  }
}

TEST(Accumulation, DropMicroBatchWithEveryMicroBatchDroppedSkipsTheStep) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
  AccumulationWindow window(model.parameters(),
                            WindowOptions().overflow(OverflowPolicy::DropMicroBatch));
  SGD opt(model.parameters(), SGDOptions(0.05));
  const auto before = snapshot(model.parameters());
  Tensor x = random_tensor({2, kIn}, 1);
  poison_row(x, 0);
  poison_row(x, 1);
  const StepReport rep =
      window_step(model, window, opt, x, random_tensor({2, kOut}, 2), {1, 1}, Reduction::Mean);
  EXPECT_FALSE(rep.applied);
  EXPECT_EQ(rep.micro_batches_dropped, 2);
  EXPECT_EQ(rep.samples, 0);
  EXPECT_EQ(snapshot(model.parameters()), before);
}

TEST(Accumulation, SkipStepSkipsAndBacksOffTheScale) {
  const WindowOptions skip =
      WindowOptions().loss_scaling(LossScaling::dynamic(1024.0f, 2.0f, 0.5f, /*interval=*/2));
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
  AccumulationWindow window(model.parameters(), skip);
  SGD opt(model.parameters(), SGDOptions(0.05).momentum(0.9));
  const auto before = snapshot(model.parameters());
  Tensor bad = random_tensor({8, kIn}, 1000);
  poison_row(bad, 6);
  StepReport rep =
      window_step(model, window, opt, bad, random_tensor({8, kOut}, 2000), {4, 4}, Reduction::Mean);
  EXPECT_FALSE(rep.applied);
  EXPECT_EQ(rep.loss_scale, 512.0f);
  EXPECT_EQ(snapshot(model.parameters()), before);

  // The next, clean steps are those of a fresh optimizer (the momentum buffer starts on the
  // first applied step), and two clean steps in a row grow the scale back to 1024.
  nn::Sequential ref = make_mlp(kIn, kHidden, kOut, 77);
  AccumulationWindow ref_window(ref.parameters());
  SGD ref_opt(ref.parameters(), SGDOptions(0.05).momentum(0.9));
  for (int s = 0; s < 2; ++s) {
    Tensor x = random_tensor({8, kIn}, 3000 + s), y = random_tensor({8, kOut}, 4000 + s);
    rep = window_step(model, window, opt, x, y, {4, 4}, Reduction::Mean);
    EXPECT_TRUE(rep.applied);
    window_step(ref, ref_window, ref_opt, x, y, {8}, Reduction::Mean);
  }
  EXPECT_EQ(rep.loss_scale, 1024.0f);
  EXPECT_LE(max_rel_diff(snapshot(model.parameters()), snapshot(ref.parameters())), 1e-6);
}

TEST(Accumulation, StepWithNoSamplesThrows) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
  AccumulationWindow window(model.parameters());
  SGD opt(model.parameters(), SGDOptions(0.05));
  window.zero_grad();
  try {
    opt.step(window);
    FAIL() << "a step of an empty window did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no samples"), std::string::npos) << e.what();
  }
  // A stepped window must be reopened: backward and step after a step throw.
  window_step(model, window, opt, random_tensor({4, kIn}, 1), random_tensor({4, kOut}, 2), {4},
              Reduction::Mean);
  EXPECT_THROW(opt.step(window), Error);
  Variable loss = nn::L1Loss()(model(Variable(random_tensor({4, kIn}, 1))),
                               Variable(random_tensor({4, kOut}, 2)));
  EXPECT_THROW(window.backward(loss), Error);
}

TEST(Accumulation, BackwardTwiceThrowsAndLeavesTheWindowIntact) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
  AccumulationWindow window(model.parameters());
  window.zero_grad();
  Variable loss = nn::L1Loss()(model(Variable(random_tensor({4, kIn}, 1))),
                               Variable(random_tensor({4, kOut}, 2)));
  window.backward(loss);
  const auto grads = snapshot(model.parameters(), true);
  EXPECT_THROW(window.backward(loss), Error);
  EXPECT_EQ(snapshot(model.parameters(), true), grads);
  EXPECT_EQ(window.counts().samples, 4u);
  EXPECT_EQ(window.micro_batches_submitted(), 1);
}

TEST(Accumulation, AFailedMicroStepDoesNotCorruptTheWindow) {
  for (OverflowPolicy policy : {OverflowPolicy::SkipStep, OverflowPolicy::DropMicroBatch}) {
    nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
    AccumulationWindow window(model.parameters(), WindowOptions().overflow(policy));
    SGD opt(model.parameters(), SGDOptions(0.05));
    Tensor x = random_tensor({8, kIn}, 1000), y = random_tensor({8, kOut}, 2000);
    nn::L1Loss mean(Reduction::Mean);
    window.zero_grad();
    window.backward(mean(model(Variable(x.rows(0, 4))), Variable(y.rows(0, 4))));
    const auto grads = snapshot(model.parameters(), true);
    // A shape error mid-window (wrong feature count), a target of the wrong shape, a loss of
    // another reduction, a loss that is not a loss: each throws and changes nothing.
    EXPECT_THROW(model(Variable(random_tensor({4, kIn + 1}, 5))), Error);
    EXPECT_THROW(mean(model(Variable(x.rows(4, 8))), Variable(random_tensor({4, kOut + 1}, 6))),
                 Error);
    EXPECT_THROW(window.backward(nn::L1Loss(Reduction::Sum)(model(Variable(x.rows(4, 8))),
                                                            Variable(y.rows(4, 8)))),
                 Error);
    EXPECT_THROW(window.backward(model(Variable(x.rows(4, 8)))), Error);
    EXPECT_EQ(snapshot(model.parameters(), true), grads);
    EXPECT_EQ(window.micro_batches_submitted(), 1);
    window.backward(mean(model(Variable(x.rows(4, 8))), Variable(y.rows(4, 8))));
    const StepReport rep = opt.step(window);
    EXPECT_EQ(rep.samples, 8);

    nn::Sequential ref = make_mlp(kIn, kHidden, kOut, 77);
    AccumulationWindow ref_window(ref.parameters());
    SGD ref_opt(ref.parameters(), SGDOptions(0.05));
    window_step(ref, ref_window, ref_opt, x, y, {8}, Reduction::Mean);
    EXPECT_LE(max_rel_diff(snapshot(model.parameters()), snapshot(ref.parameters())), 1e-6)
        << optim::overflow_policy_name(policy);
  }
}

// The window's reported loss over many samples: a plain f32 chain stagnates once the sum dwarfs
// each row's share (2^20 rows: the sum reaches ~10^7, where an f32 ulp is 1); the window keeps
// it compensated. Both overflow policies; the reference is the float64 sum of the same outputs.
TEST(Accumulation, TheWindowLossStaysAccurateOverManySamples) {
  constexpr std::int64_t kRows = std::int64_t{1} << 20, kMicro = std::int64_t{1} << 14;
  const Tensor x = random_tensor({kRows, 3}, 21);
  const Tensor y = random_tensor({kRows, 4}, 22, DType::f32, Device::CPU, -3.0f, 3.0f);
  for (OverflowPolicy policy : {OverflowPolicy::SkipStep, OverflowPolicy::DropMicroBatch}) {
    nn::Linear model(nn::LinearOptions(3, 4).seed(5));
    GemmConfig det;
    det.deterministic = true;  // the same outputs whatever the rows per call
    model.set_gemm_config(det);
    double want = 0.0;
    {
      autograd::NoGradGuard no_grad;
      const std::vector<float> p = model(Variable(x.clone())).value().to_vector();
      const std::vector<float> t = y.to_vector();
      for (std::size_t i = 0; i < p.size(); ++i)
        want += std::fabs(static_cast<double>(p[i]) - static_cast<double>(t[i]));
    }
    AccumulationWindow window(model.parameters(), WindowOptions().overflow(policy));
    SGD opt(model.parameters(), SGDOptions(1e-9));
    nn::L1Loss loss_fn(Reduction::Sum);
    window.zero_grad();
    for (std::int64_t r = 0; r < kRows; r += kMicro) {
      window.backward(
          loss_fn(model(Variable(x.rows(r, r + kMicro))), Variable(y.rows(r, r + kMicro))));
    }
    const StepReport rep = opt.step(window);
    EXPECT_NEAR(rep.loss_sum, want, 1e-6 * want) << optim::overflow_policy_name(policy);
    EXPECT_EQ(rep.loss, rep.loss_sum);
  }
}

TEST(WindowScalars, StepRecordHoldsWhatTheStepLeft) {
  ew::check_step_record(Device::CPU);
}

TEST(WindowScalars, CountsAre64BitAndTheScaleIsComputedInDouble) {
  Storage counts = make_window_counts(Device::CPU);
  Tensor ls = Tensor::full({1}, 1.0f), inv = Tensor::full({1}, 1.0f);
  LossScaleRule rule;
  const std::uint64_t big = 3'000'000'001ull;  // past 2^31 (and 2^32 in total)
  window_count_micro_batch(counts, nullptr, big, 2 * big, ls, inv, rule);
  window_count_micro_batch(counts, nullptr, big, 2 * big, ls, inv, rule);
  WindowCounts c = read_window_counts(counts);
  EXPECT_EQ(c.samples, 2 * big);
  EXPECT_EQ(c.elements, 4 * big);
  EXPECT_EQ(c.micro_batches, 2u);
  Tensor gs = Tensor::zeros({1});
  NonFiniteFlag skip(Device::CPU);
  window_grad_scale(counts, WindowDivisor::Elements, nullptr, gs, skip);
  EXPECT_EQ(gs.to_vector()[0], static_cast<float>(1.0 / (4.0 * static_cast<double>(big))));
  EXPECT_FALSE(skip.raised());
  reset_window_counts(counts);
  window_grad_scale(counts, WindowDivisor::Samples, nullptr, gs, skip);
  EXPECT_TRUE(skip.raised());
}

TEST(Accumulation, F16ModelKeepsF32MastersAndScalesTheLoss) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
  model.to(DType::f16);
  AccumulationWindow window(model.parameters(),
                            WindowOptions().loss_scaling(LossScaling::dynamic()));
  SGD opt(model.parameters(), SGDOptions(0.05).momentum(0.9));
  int applied = 0;
  for (int s = 0; s < 6; ++s) {
    Tensor x = random_tensor({kBatch, kIn}, 1000 + s, DType::f16);
    Tensor y = random_tensor({kBatch, kOut}, 2000 + s, DType::f16);
    StepReport rep = window_step(model, window, opt, x, y, {10, 10, 4}, Reduction::Mean);
    applied += rep.applied ? 1 : 0;
  }
  EXPECT_GT(applied, 0);
  // The f16 parameters are the f32 masters rounded to half.
  auto params = model.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto master = opt.master_weight(i).to_vector();
    auto half = params[i].value().to_vector();
    for (std::size_t j = 0; j < half.size(); ++j)
      EXPECT_EQ(half[j], round_to_half(master[j]));
  }
}

}  // namespace
}  // namespace gradaccum::test
