// The linear layer on the CPU: hand-written fixed-order path and the BLAS path, against float64.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/gemm_cpu.h"
#include "kernels/linear.h"
#include "linear_test_util.h"
#include "test_util.h"

namespace gradaccum {
namespace {

using test::check_linear_layer;
using test::same_bits;

const GemmConfig kHandwritten{GemmBackend::Handwritten, false};
const GemmConfig kVendor{GemmBackend::Vendor, false};

std::string backend_name(GemmBackend b) {
  switch (b) {
    case GemmBackend::Auto:
      return "Auto";
    case GemmBackend::Handwritten:
      return "Handwritten";
    case GemmBackend::Vendor:
      return "Vendor";
  }
  return "?";
}

class CpuLinear : public ::testing::TestWithParam<std::tuple<GemmBackend, DType>> {
 protected:
  void SetUp() override {
    if (std::get<0>(GetParam()) == GemmBackend::Vendor && !cpu::have_blas()) {
      GTEST_SKIP() << "gradaccum was built without a BLAS library";
    }
  }
  GemmConfig config() const { return GemmConfig{std::get<0>(GetParam()), false}; }
  DType dtype() const { return std::get<1>(GetParam()); }
  bool exact() const { return std::get<0>(GetParam()) == GemmBackend::Handwritten; }
};

TEST_P(CpuLinear, OddAndSmallShapes) {
  std::uint64_t seed = 100;
  for (std::int64_t rows : {1, 3, 17, 100}) {
    for (std::int64_t in : {1, 3, 17, 64, 129}) {
      for (std::int64_t out : {1, 3, 17, 64, 129}) {
        check_linear_layer(rows, in, out, dtype(), Device::CPU, config(), exact(), seed += 10);
      }
    }
  }
}

TEST_P(CpuLinear, ThousandRows) {
  std::uint64_t seed = 5000;
  for (std::int64_t in : {3, 64, 129}) {
    for (std::int64_t out : {1, 17, 129}) {
      check_linear_layer(1000, in, out, dtype(), Device::CPU, config(), exact(), seed += 10);
    }
  }
}

TEST_P(CpuLinear, LargerThanOneTile) {
  // Several cache blocks in every dimension (64 x 128 outputs, 256 k steps per block).
  check_linear_layer(300, 520, 200, dtype(), Device::CPU, config(), exact(), 77);
}

INSTANTIATE_TEST_SUITE_P(Backends, CpuLinear,
                         ::testing::Combine(::testing::Values(GemmBackend::Handwritten,
                                                              GemmBackend::Vendor,
                                                              GemmBackend::Auto),
                                            ::testing::Values(DType::f32, DType::f16)),
                         [](const ::testing::TestParamInfo<CpuLinear::ParamType>& p) {
                           return backend_name(std::get<0>(p.param)) + "_" +
                                  dtype_name(std::get<1>(p.param));
                         });

TEST(CpuLinearDeterminism, SplitOverRowsIsBitIdentical) {
  for (DType dtype : {DType::f32, DType::f16}) {
    for (std::int64_t a : {0, 1, 7, 16, 50, 99, 100}) {
      test::check_split_invariance(100, 33, 19, a, dtype, Device::CPU, kHandwritten, 900 + a);
    }
    test::check_split_invariance(1000, 129, 65, 333, dtype, Device::CPU, kHandwritten, 42);
  }
}

TEST(CpuLinearDeterminism, DeterministicForcesTheHandwrittenPath) {
  const Tensor x = test::random_tensor({57, 70}, 1);
  const Tensor w = test::random_tensor({45, 70}, 2);
  const Tensor dy = test::random_tensor({57, 45}, 3);
  for (GemmBackend backend : {GemmBackend::Auto, GemmBackend::Vendor}) {
    const GemmConfig det{backend, true};
    Tensor y1 = test::poisoned({57, 45}), y2 = test::poisoned({57, 45});
    linear_forward(x, w, nullptr, y1, false, kHandwritten);
    linear_forward(x, w, nullptr, y2, false, det);
    EXPECT_TRUE(same_bits(y1.to_vector(), y2.to_vector())) << backend_name(backend);
    Tensor dw1 = test::poisoned({45, 70}), dw2 = test::poisoned({45, 70});
    linear_backward_params(dy, x, dw1, nullptr, GradientMode::Overwrite, nullptr, kHandwritten);
    linear_backward_params(dy, x, dw2, nullptr, GradientMode::Overwrite, nullptr, det);
    EXPECT_TRUE(same_bits(dw1.to_vector(), dw2.to_vector())) << backend_name(backend);
  }
}

TEST(CpuLinearDeterminism, ForwardIsBatchInvariant) {
  // Each output row is the same chain whatever the other rows: row r of a big batch equals the
  // forward of row r alone.
  const Tensor x = test::random_tensor({37, 150}, 11);
  const Tensor w = test::random_tensor({70, 150}, 12);
  const Tensor b = test::random_tensor({70}, 13);
  Tensor y = test::poisoned({37, 70});
  linear_forward(x, w, &b, y, true, kHandwritten);
  const std::vector<float> all = y.to_vector();
  for (std::int64_t r : {0, 5, 36}) {
    const Tensor xr = x.rows(r, r + 1);
    Tensor yr = test::poisoned({1, 70});
    linear_forward(xr, w, &b, yr, true, kHandwritten);
    EXPECT_TRUE(same_bits(yr.to_vector(),
                          std::vector<float>(all.begin() + r * 70, all.begin() + (r + 1) * 70)));
  }
}

TEST(CpuLinear, KahanKeepsContributionsBelowHalfAnUlp) {
  test::check_kahan_keeps_small_contributions(Device::CPU, kHandwritten);
  if (cpu::have_blas()) test::check_kahan_keeps_small_contributions(Device::CPU, kVendor);
}

TEST(CpuLinear, ZeroRows) {
  for (const GemmConfig& config : {kHandwritten, kVendor}) {
    if (config.backend == GemmBackend::Vendor && !cpu::have_blas()) continue;
    for (DType dtype : {DType::f32, DType::f16}) {
      const Tensor x = Tensor::empty({0, 5}, dtype);
      const Tensor w = test::random_tensor({4, 5}, 1, dtype);
      const Tensor b = test::random_tensor({4}, 2, dtype);
      const Tensor dy = Tensor::empty({0, 4}, dtype);
      Tensor y = Tensor::empty({0, 4}, dtype);
      linear_forward(x, w, &b, y, true, config);
      EXPECT_EQ(y.numel(), 0);
      Tensor dx = Tensor::empty({0, 5}, dtype);
      linear_backward_input(dy, w, dx, GradientMode::Overwrite, nullptr, config);
      Tensor dw = test::poisoned({4, 5});
      Tensor db = test::poisoned({4});
      linear_backward_params(dy, x, dw, &db, GradientMode::Overwrite, nullptr, config);
      EXPECT_EQ(dw.to_vector(), std::vector<float>(20, 0.0f));
      EXPECT_EQ(db.to_vector(), std::vector<float>(4, 0.0f));
      const Tensor dw_old = test::random_tensor({4, 5}, 3);
      const Tensor db_old = test::random_tensor({4}, 4);
      Tensor dwa = dw_old.clone(), dba = db_old.clone();
      linear_backward_params(dy, x, dwa, &dba, GradientMode::Accumulate, nullptr, config);
      EXPECT_TRUE(same_bits(dwa.to_vector(), dw_old.to_vector()));
      EXPECT_TRUE(same_bits(dba.to_vector(), db_old.to_vector()));
    }
  }
}

TEST(CpuLinear, ZeroInFeaturesGivesTheBias) {
  const Tensor x = Tensor::empty({3, 0});
  const Tensor w = Tensor::empty({2, 0});
  const Tensor b = Tensor::from_vector({-1.5f, 2.5f}, {2});
  Tensor y = test::poisoned({3, 2});
  linear_forward(x, w, &b, y, true, kHandwritten);
  EXPECT_EQ(y.to_vector(), (std::vector<float>{0, 2.5f, 0, 2.5f, 0, 2.5f}));
  const Tensor dy = test::random_tensor({3, 2}, 5);
  Tensor dw = Tensor::empty({2, 0});
  Tensor db = test::poisoned({2});
  linear_backward_params(dy, x, dw, &db, GradientMode::Overwrite, nullptr, kHandwritten);
  const std::vector<float> d = dy.to_vector();
  EXPECT_EQ(db.to_vector(), (std::vector<float>{d[0] + d[2] + d[4], d[1] + d[3] + d[5]}));
}

template <typename F>
void expect_error_mentioning(F&& f, const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "expected gradaccum::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& word : words) {
      EXPECT_NE(msg.find(word), std::string::npos) << "message lacks '" << word << "': " << msg;
    }
  }
}

TEST(CpuLinear, BadArgumentsThrowNamingTheProblem) {
  const Tensor x = test::random_tensor({4, 5}, 1);
  const Tensor w = test::random_tensor({3, 5}, 2);
  const Tensor w_bad = test::random_tensor({3, 6}, 2);
  const Tensor w16 = test::random_tensor({3, 5}, 2, DType::f16);
  const Tensor b_bad = test::random_tensor({4}, 3);
  Tensor y = test::poisoned({4, 3});
  Tensor y_bad = test::poisoned({4, 4});
  expect_error_mentioning([&] { linear_forward(x, w_bad, nullptr, y); }, {"w", "[3, 6]"});
  expect_error_mentioning([&] { linear_forward(x, w16, nullptr, y); }, {"f32", "f16"});
  expect_error_mentioning([&] { linear_forward(x, w, &b_bad, y); }, {"b", "[3]", "[4]"});
  expect_error_mentioning([&] { linear_forward(x, w, nullptr, y_bad); }, {"y", "[4, 3]", "[4, 4]"});
  expect_error_mentioning([&] { linear_forward(Tensor(), w, nullptr, y); }, {"x", "undefined"});

  const Tensor dy = test::random_tensor({4, 3}, 4);
  Tensor dx = test::poisoned({4, 5});
  Tensor dx_bad = test::poisoned({5, 5});
  const Tensor mask_bad = test::random_tensor({4, 5}, 5, DType::f16);
  expect_error_mentioning([&] { linear_backward_input(dy, w, dx_bad, GradientMode::Overwrite); },
                          {"dx", "[4, 5]"});
  expect_error_mentioning(
      [&] { linear_backward_input(dy, w, dx, GradientMode::Overwrite, &mask_bad); },
      {"relu_out", "f16"});
  const Tensor w_out_bad = test::random_tensor({2, 5}, 7);
  expect_error_mentioning(
      [&] { linear_backward_input(dy, w_out_bad, dx, GradientMode::Overwrite); },
      {"w", "out", "[2, 5]"});

  Tensor dw = test::poisoned({3, 5});
  Tensor dw16 = test::poisoned({3, 5}, DType::f16);
  Tensor db = test::poisoned({3});
  Tensor db_bad = test::poisoned({4});
  const Tensor x_rows = test::random_tensor({5, 5}, 6);
  expect_error_mentioning(
      [&] { linear_backward_params(dy, x, dw16, &db, GradientMode::Accumulate); },
      {"dw", "f32", "f16"});
  expect_error_mentioning(
      [&] { linear_backward_params(dy, x, dw, &db_bad, GradientMode::Accumulate); },
      {"db", "[3]", "[4]"});
  expect_error_mentioning(
      [&] { linear_backward_params(dy, x_rows, dw, &db, GradientMode::Accumulate); }, {"rows"});
  Tensor comp = Tensor::zeros({3, 5});
  KahanState no_db_comp{&comp, nullptr};
  expect_error_mentioning(
      [&] { linear_backward_params(dy, x, dw, &db, GradientMode::Accumulate, &no_db_comp); },
      {"db_comp"});
  Tensor comp_bad = Tensor::zeros({5, 3});
  KahanState bad_comp{&comp_bad, nullptr};
  expect_error_mentioning(
      [&] { linear_backward_params(dy, x, dw, nullptr, GradientMode::Accumulate, &bad_comp); },
      {"dw_comp", "[3, 5]"});
}

}  // namespace
}  // namespace gradaccum
