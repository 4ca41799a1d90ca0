// BatchNorm1d: the kernels against float64 references on fresh random inputs, the module's
// training and evaluation modes, window mode's split invariance, the variance's stability under
// a large mean offset, and bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "batch_norm_helpers.h"
#include "core/half.h"
#include "core/npy.h"
#include "kernels/batch_norm.h"

namespace gradaccum::test {
namespace {

// Per-channel float64 mean and biased variance of x [n, c] (row-major values).
void reference_moments(const std::vector<float>& x, std::int64_t n, std::int64_t c,
                       std::vector<double>& mean, std::vector<double>& var) {
  mean.assign(static_cast<std::size_t>(c), 0.0);
  var.assign(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < c; ++j)
      mean[j] += x[i * c + j];
  for (auto& m : mean)
    m /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < c; ++j)
      var[j] += (x[i * c + j] - mean[j]) * (x[i * c + j] - mean[j]);
  for (auto& v : var)
    v /= static_cast<double>(n);
}

struct Moments {
  Tensor mean, var, invstd;
};

Moments kernel_moments(const Tensor& x, float eps) {
  const std::int64_t c = x.size(1);
  Moments m{poisoned({c}, DType::f32, x.device()), poisoned({c}, DType::f32, x.device()),
            poisoned({c}, DType::f32, x.device())};
  ExactSum sum({c}, x.device());
  NonFiniteFlag flag(x.device());
  batch_norm_sum_rows(x, nullptr, BatchNormRowSum::Values, sum, &flag);
  batch_norm_mean(sum, x.size(0), &flag, m.mean);
  sum.zero();
  batch_norm_sum_rows(x, &m.mean, BatchNormRowSum::SquaredDeviations, sum, &flag);
  batch_norm_variance(sum, x.size(0), eps, &flag, m.var, m.invstd);
  EXPECT_FALSE(flag.raised());
  return m;
}

TEST(BatchNormKernels, StatisticsMatchFloat64) {
  for (DType dtype : {DType::f32, DType::f16}) {
    const std::int64_t n = 37, c = 11;
    const Tensor x = random_tensor({n, c}, 101, dtype, Device::CPU, -3.0f, 5.0f);
    const Moments m = kernel_moments(x, 1e-5f);
    std::vector<double> mean, var;
    reference_moments(x.to(DType::f32).to_vector(), n, c, mean, var);
    EXPECT_LE(max_rel_error(m.mean.to_vector(), mean, 1e-3), 1e-6);
    EXPECT_LE(max_rel_error(m.var.to_vector(), var), 1e-6);
    std::vector<double> invstd;
    for (double v : var)
      invstd.push_back(1.0 / std::sqrt(v + 1e-5));
    EXPECT_LE(max_rel_error(m.invstd.to_vector(), invstd), 1e-6);
  }
}

TEST(BatchNormKernels, ForwardAndBackwardMatchFloat64) {
  for (DType dtype : {DType::f32, DType::f16}) {
    const std::int64_t n = 23, c = 9;
    const double tol = dtype == DType::f32 ? 2e-6 : 2e-3;
    const Tensor x = random_tensor({n, c}, 202, dtype, Device::CPU, -2.0f, 3.0f);
    const Tensor dy = random_tensor({n, c}, 203, dtype);
    const Tensor w = random_tensor({c}, 204, DType::f32, Device::CPU, 0.5f, 1.5f);
    const Tensor b = random_tensor({c}, 205);
    const Moments m = kernel_moments(x, 1e-5f);
    Tensor y = poisoned({n, c}, dtype);
    batch_norm_forward(x, m.mean, m.invstd, &w, &b, y);

    ExactSum s1({c}, Device::CPU), s2({c}, Device::CPU);
    batch_norm_sum_backward(dy, x, m.mean, m.invstd, s1, s2, nullptr);
    Tensor sum_dy = poisoned({c}), sum_dy_xhat = poisoned({c});
    batch_norm_mean(s1, 1, nullptr, sum_dy);
    batch_norm_mean(s2, 1, nullptr, sum_dy_xhat);
    Tensor dx = poisoned({n, c}, dtype);
    batch_norm_backward_input(dy, x, m.mean, m.invstd, &w, {&sum_dy, &sum_dy_xhat, n}, dx,
                              GradientMode::Overwrite);

    // float64, from the same (rounded) inputs.
    const auto xv = x.to(DType::f32).to_vector(), gv = dy.to(DType::f32).to_vector();
    const auto wv = w.to_vector(), bv = b.to_vector();
    std::vector<double> mean, var;
    reference_moments(xv, n, c, mean, var);
    std::vector<double> want_y(xv.size()), want_dx(xv.size()), want_s1(c, 0.0), want_s2(c, 0.0);
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < c; ++j) {
        const double h = (xv[i * c + j] - mean[j]) / std::sqrt(var[j] + 1e-5);
        want_y[i * c + j] = h * wv[j] + bv[j];
        want_s1[j] += gv[i * c + j];
        want_s2[j] += gv[i * c + j] * h;
      }
    }
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < c; ++j) {
        const double is = 1.0 / std::sqrt(var[j] + 1e-5);
        const double h = (xv[i * c + j] - mean[j]) * is;
        want_dx[i * c + j] = (gv[i * c + j] - want_s1[j] / n - h * want_s2[j] / n) * wv[j] * is;
      }
    }
    // Errors relative to the values' scale (about 1): y, the sums and dx cancel to near zero in
    // places, where a relative error means nothing.
    EXPECT_LE(max_rel_error(y.to(DType::f32).to_vector(), want_y, 1.0), tol);
    EXPECT_LE(max_rel_error(sum_dy.to_vector(), want_s1, 1.0), tol);
    EXPECT_LE(max_rel_error(sum_dy_xhat.to_vector(), want_s2, 1.0), tol);
    EXPECT_LE(max_rel_error(dx.to(DType::f32).to_vector(), want_dx, 1.0), 4 * tol);
  }
}

TEST(BatchNormKernels, SumsDoNotDependOnTheSplit) {
  const std::int64_t n = 40, c = 7;
  const Tensor x = random_tensor({n, c}, 303, DType::f32, Device::CPU, -100.0f, 300.0f);
  ExactSum whole({c}, Device::CPU), parts({c}, Device::CPU);
  batch_norm_sum_rows(x, nullptr, BatchNormRowSum::Values, whole, nullptr);
  for (std::int64_t b = 0; b < n; b += 3)
    batch_norm_sum_rows(x.rows(b, std::min(n, b + 3)), nullptr, BatchNormRowSum::Values, parts,
                        nullptr);
  Tensor a = poisoned({c}), p = poisoned({c});
  whole.round_to(a);
  parts.round_to(p);
  EXPECT_EQ(a.to_vector(), p.to_vector());
}

TEST(BatchNormKernels, NonFiniteInputRaisesTheFlagAndGivesNaNStatistics) {
  std::vector<float> v(12, 1.5f);
  v[5] = INFINITY;
  const Tensor x = Tensor::from_vector(v, {4, 3});
  ExactSum sum({3}, Device::CPU);
  NonFiniteFlag flag(Device::CPU);
  batch_norm_sum_rows(x, nullptr, BatchNormRowSum::Values, sum, &flag);
  EXPECT_TRUE(flag.raised());
  Tensor mean = poisoned({3});
  batch_norm_mean(sum, 4, &flag, mean);
  for (float m : mean.to_vector())
    EXPECT_TRUE(std::isnan(m));
}

TEST(BatchNormKernels, BadArgumentsAreRefused) {
  const Tensor x = random_tensor({4, 3}, 1);
  Tensor y = poisoned({4, 3});
  const Tensor mean = random_tensor({3}, 2), wrong = random_tensor({4}, 3);
  EXPECT_THROW(batch_norm_forward(x, wrong, mean, nullptr, nullptr, y), Error);
  const Tensor x_f16 = random_tensor({4, 3}, 1, DType::f16);
  EXPECT_THROW(batch_norm_forward(x_f16, mean, mean, nullptr, nullptr, y), Error);
  ExactSum sum({4}, Device::CPU);
  EXPECT_THROW(batch_norm_sum_rows(x, nullptr, BatchNormRowSum::Values, sum, nullptr), Error);
  Tensor rm = random_tensor({3}, 4), rv = random_tensor({3}, 5);
  EXPECT_THROW(batch_norm_update_running(rm, rv, mean, mean, 1, 0.1f), Error);
  EXPECT_THROW(batch_norm_update_running(rm, rv, mean, mean, 4, 1.5f), Error);
}

// ---- the module ----

TEST(BatchNorm1dModule, TrainingUpdatesRunningStatisticsAndEvalUsesThem) {
  nn::BatchNorm1d bn(nn::BatchNormOptions(5).momentum(0.25));
  const std::int64_t n = 16;
  const Tensor x = random_tensor({n, 5}, 404, DType::f32, Device::CPU, -1.0f, 4.0f);
  const Tensor y = bn(autograd::Variable(x.clone())).value().clone();
  std::vector<double> mean, var;
  reference_moments(x.to_vector(), n, 5, mean, var);
  std::vector<double> want_rm, want_rv, want_y;
  for (std::size_t j = 0; j < 5; ++j) {
    want_rm.push_back(0.25 * mean[j]);
    want_rv.push_back(0.75 + 0.25 * var[j] * n / (n - 1));
  }
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < 5; ++j)
      want_y.push_back((x.to_vector()[i * 5 + j] - mean[j]) / std::sqrt(var[j] + 1e-5));
  EXPECT_LE(max_rel_error(y.to_vector(), want_y, 1e-2), 2e-6);
  EXPECT_LE(max_rel_error(bn.running_mean().to_vector(), want_rm, 1e-2), 2e-6);
  EXPECT_LE(max_rel_error(bn.running_var().to_vector(), want_rv), 2e-6);

  bn.eval();
  const Tensor ye = bn(autograd::Variable(x.clone())).value().clone();
  std::vector<double> want_e;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < 5; ++j)
      want_e.push_back((x.to_vector()[i * 5 + j] - want_rm[j]) / std::sqrt(want_rv[j] + 1e-5));
  EXPECT_LE(max_rel_error(ye.to_vector(), want_e, 1e-2), 2e-6);
}

TEST(BatchNorm1dModule, GhostModeRefusesOneRowLikePyTorch) {
  nn::BatchNorm1d bn(4);
  try {
    bn(autograd::Variable(random_tensor({1, 4}, 5)));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected more than 1 value per channel when training"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(bn(autograd::Variable(random_tensor({3, 5}, 6))), Error);  // C mismatch
}

// ---- window mode ----

Tensor batch_inputs(std::int64_t n, std::uint64_t seed) {
  return random_tensor({n, 6}, seed, DType::f32, Device::CPU, -2.0f, 3.0f);
}

TEST(BatchNormWindow, DeterministicModeIsBitIdenticalForEverySplit) {
  const std::int64_t batch = 24;
  const Tensor x = batch_inputs(batch * 2, 505);
  const Tensor y = random_tensor({batch * 2, 3}, 506);
  const std::vector<std::vector<std::int64_t>> splits = {
      {24}, {12, 12}, {7, 1, 16}, std::vector<std::int64_t>(24, 1), {5, 5, 5, 5, 4}};
  std::vector<std::vector<float>> first;
  for (const auto& split : splits) {
    nn::Sequential model = make_bn_mlp(6, 8, 3, 77);
    GemmConfig gc;
    gc.deterministic = true;
    model.set_gemm_config(gc);
    optim::AccumulationWindow window(model.parameters());
    optim::SGD opt(model.parameters(), optim::SGDOptions(0.1).momentum(0.9));
    for (int s = 0; s < 2; ++s) {
      const optim::StepReport r =
          replay_step(model, window, opt, x.rows(s * batch, (s + 1) * batch),
                      y.rows(s * batch, (s + 1) * batch), split, Reduction::Mean);
      ASSERT_TRUE(r.applied);
    }
    const auto got = state_snapshot(model);
    if (first.empty()) {
      first = got;
    } else {
      EXPECT_EQ(got, first) << "split of " << split.size() << " micro-batches";
    }
  }
}

TEST(BatchNormWindow, GhostDiffersFromTheBigBatchAndWindowDoesNot) {
  const std::int64_t batch = 32;
  const Tensor x = batch_inputs(batch, 606);
  const Tensor y = random_tensor({batch, 3}, 607);
  auto run = [&](bool window_mode, const std::vector<std::int64_t>& split) {
    nn::Sequential model = make_bn_mlp(6, 8, 3, 88);
    optim::AccumulationWindow window(model.parameters());
    optim::SGD opt(model.parameters(), optim::SGDOptions(0.5));
    if (window_mode) {
      replay_step(model, window, opt, x, y, split, Reduction::Mean);
    } else {
      window_step(model, window, opt, x, y, split, Reduction::Mean);
    }
    return state_snapshot(model);
  };
  const auto big = run(false, {32});
  EXPECT_LE(max_rel_diff(run(true, {8, 8, 8, 8}), big, 1e-2), 1e-5);
  EXPECT_GT(max_rel_diff(run(false, {8, 8, 8, 8}), big, 1e-2), 1e-3);
}

TEST(BatchNormWindow, SeveralBatchNormLayers) {
  auto make = [] {
    return nn::Sequential({{"fc1", nn::Linear(nn::LinearOptions(6, 8).seed(1))},
                           {"bn1", nn::BatchNorm1d(8)},
                           {"relu1", nn::ReLU()},
                           {"fc2", nn::Linear(nn::LinearOptions(8, 5).seed(2))},
                           {"bn2", nn::BatchNorm1d(5)},
                           {"relu2", nn::ReLU()},
                           {"fc3", nn::Linear(nn::LinearOptions(5, 3).seed(3))}});
  };
  const Tensor x = batch_inputs(20, 707);
  const Tensor y = random_tensor({20, 3}, 708);
  nn::Sequential big = make(), split = make();
  optim::AccumulationWindow wb(big.parameters()), ws(split.parameters());
  optim::SGD ob(big.parameters(), optim::SGDOptions(0.3)),
      os(split.parameters(), optim::SGDOptions(0.3));
  window_step(big, wb, ob, x, y, {20}, Reduction::Mean);  // one batch: ghost = the big batch
  nn::L1Loss loss_fn(Reduction::Mean);
  optim::BatchNormReplay replay(
      ws, split,
      [&](const autograd::Variable& p, const autograd::Variable& t) { return loss_fn(p, t); });
  ws.zero_grad();
  for (std::int64_t b = 0; b < 20; b += 3)
    replay.submit(x.rows(b, std::min<std::int64_t>(20, b + 3)),
                  y.rows(b, std::min<std::int64_t>(20, b + 3)));
  replay.backward();
  EXPECT_EQ(replay.forward_passes(), 4 + 2 + 1);
  EXPECT_EQ(replay.backward_passes(), 3);
  os.step(ws);
  EXPECT_LE(max_rel_diff(state_snapshot(split), state_snapshot(big), 1e-2), 1e-5);
}

TEST(BatchNormWindow, KahanAndExactCompensationGiveTheBigBatch) {
  const Tensor x = batch_inputs(18, 808);
  const Tensor y = random_tensor({18, 3}, 809);
  nn::Sequential ref = make_bn_mlp(6, 8, 3, 9);
  optim::AccumulationWindow wr(ref.parameters());
  optim::SGD opr(ref.parameters(), optim::SGDOptions(0.2));
  window_step(ref, wr, opr, x, y, {18}, Reduction::Sum);
  for (auto comp : {optim::Compensation::Kahan, optim::Compensation::Exact}) {
    nn::Sequential model = make_bn_mlp(6, 8, 3, 9);
    optim::AccumulationWindow window(model.parameters(), optim::WindowOptions().compensation(comp));
    optim::SGD opt(model.parameters(), optim::SGDOptions(0.2));
    replay_step(model, window, opt, x, y, {4, 1, 13}, Reduction::Sum);
    EXPECT_LE(max_rel_diff(state_snapshot(model), state_snapshot(ref), 1e-2), 1e-5)
        << optim::compensation_name(comp);
  }
}

// The forum's worry, measured: the window variance of a channel with a mean 1e4 times its
// spread, over k micro-batches of 4 rows, against float64; a naive f32 E[x²] - E[x]² next to it.
TEST(BatchNormWindow, VarianceIsStableUnderALargeMeanOffset) {
  std::printf("%8s %14s %14s\n", "k", "window rel err", "naive rel err");
  for (std::int64_t k : {1, 16, 256, 4096}) {
    const std::int64_t rows = 4 * k, c = 3;
    std::vector<float> v = random_values(rows * c, 900 + k, -1.0f, 1.0f);
    for (float& e : v)
      e += 1.0e4f;
    const Tensor x = Tensor::from_vector(v, {rows, c});
    ExactSum sum({c}, Device::CPU);
    for (std::int64_t b = 0; b < rows; b += 4)
      batch_norm_sum_rows(x.rows(b, b + 4), nullptr, BatchNormRowSum::Values, sum, nullptr);
    Tensor mean = poisoned({c}), var = poisoned({c}), invstd = poisoned({c});
    batch_norm_mean(sum, rows, nullptr, mean);
    sum.zero();
    for (std::int64_t b = 0; b < rows; b += 4)
      batch_norm_sum_rows(x.rows(b, b + 4), &mean, BatchNormRowSum::SquaredDeviations, sum,
                          nullptr);
    batch_norm_variance(sum, rows, 0.0f, nullptr, var, invstd);
    std::vector<double> want_mean, want_var;
    reference_moments(v, rows, c, want_mean, want_var);
    const double err = max_rel_error(var.to_vector(), want_var);
    // The textbook one-pass formula in f32.
    std::vector<float> naive(c);
    for (std::int64_t j = 0; j < c; ++j) {
      float s = 0.0f, s2 = 0.0f;
      for (std::int64_t i = 0; i < rows; ++i) {
        s += v[i * c + j];
        s2 += v[i * c + j] * v[i * c + j];
      }
      const float m = s / static_cast<float>(rows);
      naive[j] = s2 / static_cast<float>(rows) - m * m;
    }
    const double naive_err = max_rel_error(naive, want_var);
    std::printf("%8lld %14.2e %14.2e\n", static_cast<long long>(k), err, naive_err);
    // The mean is exact to one rounding (ulp(1e4) ~ 1e-3, against a spread of 0.58), and every
    // squared deviation is from that mean: the variance is good to about 1e-6.
    EXPECT_LE(err, 1e-5) << "k = " << k;
  }
}

TEST(BatchNormWindow, BadInputGivesClearErrors) {
  nn::Sequential model = make_bn_mlp(6, 8, 3, 10);
  nn::L1Loss loss_fn(Reduction::Mean);
  auto loss = [&](const autograd::Variable& p, const autograd::Variable& t) {
    return loss_fn(p, t);
  };
  {  // non-finite input
    optim::AccumulationWindow window(model.parameters());
    optim::BatchNormReplay replay(window, model, loss);
    std::vector<float> v = random_values(4 * 6, 11);
    v[7] = NAN;
    window.zero_grad();
    replay.submit(Tensor::from_vector(v, {4, 6}), random_tensor({4, 3}, 12));
    try {
      replay.backward();
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
    }
  }
  {  // a window of one row
    optim::AccumulationWindow window(model.parameters());
    optim::BatchNormReplay replay(window, model, loss);
    window.zero_grad();
    replay.submit(random_tensor({1, 6}, 13), random_tensor({1, 3}, 14));
    EXPECT_THROW(replay.backward(), Error);
    optim::BatchNormReplay empty(window, model, loss);
    EXPECT_THROW(empty.backward(), Error);  // nothing submitted
    EXPECT_THROW(empty.submit(random_tensor({2, 6}, 15), random_tensor({3, 3}, 16)), Error);
  }
  {  // drop-micro-batch windows are refused
    optim::AccumulationWindow window(model.parameters(),
                                     optim::WindowOptions()
                                         .loss_scaling(optim::LossScaling::fixed(8.0f))
                                         .overflow(optim::OverflowPolicy::DropMicroBatch));
    EXPECT_THROW(optim::BatchNormReplay(window, model, loss), Error);
  }
}

TEST(BatchNormWindow, GhostNonFiniteInputSkipsTheStep) {
  nn::Sequential model = make_bn_mlp(6, 8, 3, 17);
  optim::AccumulationWindow window(model.parameters());
  optim::SGD opt(model.parameters(), optim::SGDOptions(0.1));
  std::vector<float> v = random_values(8 * 6, 18);
  v[3] = INFINITY;
  const auto before = snapshot(model.parameters());
  const optim::StepReport r = window_step(model, window, opt, Tensor::from_vector(v, {8, 6}),
                                          random_tensor({8, 3}, 19), {4, 4}, Reduction::Mean);
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(snapshot(model.parameters()), before);
}

TEST(BatchNormFiles, SaveLoadAndMissingOrWrongFiles) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("ga_bn_files_" + std::to_string(::getpid())))
          .string();
  nn::Sequential a = make_bn_mlp(6, 8, 3, 20);
  optim::AccumulationWindow window(a.parameters());
  optim::SGD opt(a.parameters(), optim::SGDOptions(0.1));
  window_step(a, window, opt, batch_inputs(10, 21), random_tensor({10, 3}, 22), {5, 5},
              Reduction::Mean);
  a.save(dir);
  for (const char* f : {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f + ".npy")) << f;
  nn::Sequential b = make_bn_mlp(6, 8, 3, 23);
  b.load(dir);
  EXPECT_EQ(state_snapshot(b), state_snapshot(a));

  save_npy(dir + "/bn.running_var.npy", random_tensor({7}, 24));
  try {
    b.load(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bn.running_var"), std::string::npos) << e.what();
  }
  std::filesystem::remove(dir + "/bn.running_var.npy");
  EXPECT_THROW(b.load(dir), Error);
  EXPECT_EQ(state_snapshot(b), state_snapshot(a));  // a failed load changes nothing
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace gradaccum::test
