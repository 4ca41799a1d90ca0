// The numerical stability of gradient accumulation (study/accumulation_study.h): each test
// asserts a property that numerical analysis predicts, on the CPU (the emulated device and a GPU
// give the same bits: tests/gpu/stability_test.cpp).
#include "study/accumulation_study.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <vector>

#include "core/cuda_device.h"
#include "core/half.h"
#include "core/random.h"
#include "kernels/accumulate.h"

namespace gradaccum {
namespace {

using study::AccumMode;
using study::CellResult;
using study::GradientPool;
using study::GradientSource;
using study::StudyOptions;

constexpr double kEps = 0x1.0p-23;  // float32 machine epsilon (ulp of 1)

// Pools are built once per test binary (the MLP's takes a few hundred milliseconds).
const GradientPool& pool(GradientSource s) {
  static std::map<GradientSource, std::unique_ptr<GradientPool>> pools;
  auto& p = pools[s];
  if (!p) p = std::make_unique<GradientPool>(s, StudyOptions());
  return *p;
}

std::vector<CellResult> sweep(AccumMode m, GradientSource s, std::int64_t max_k,
                              const StudyOptions& o = StudyOptions()) {
  return study::run_sweep(m, pool(s), study::doubling_counts(max_k), o);
}

// ---- the kernel's fp16 arithmetic ---------------------------------------------------------------

TEST(Stability, Fp16AccumulateRoundsEveryAdditionToNearestEven) {
  // acc_f16 += g_f16 on the CPU must be the correctly rounded fp16 sum: the exact sum of two
  // halves (exact in double) rounded once to nearest even, over every exponent, subnormals,
  // ties and overflow to infinity.
  const std::int64_t n = 1 << 16;
  std::vector<std::uint16_t> a(n), b(n);
  CounterRng rng(42);
  auto finite_half = [&] {
    std::uint16_t h;
    do {
      h = static_cast<std::uint16_t>(rng.next());
    } while ((h & 0x7C00u) == 0x7C00u);
    return h;
  };
  for (std::int64_t i = 0; i < n; ++i) {
    a[i] = finite_half();
    // Half the pairs share the exponent range of a, so that both operands matter.
    b[i] = (i % 2 == 0) ? finite_half()
                        : static_cast<std::uint16_t>((a[i] & 0xFC00u) ^ (rng.next() & 0x83FFu));
    if ((b[i] & 0x7C00u) == 0x7C00u) b[i] = 0;
  }
  // Known ties and edges: 2048 + 1 (tie, stays even), 2048 + 3, 1 + 2^-11 (tie), 65504 + 16
  // (tie above the largest finite: infinity), subnormal + subnormal into the normal range.
  const std::uint16_t edges[][2] = {{0x6800, 0x3C00}, {0x6800, 0x4200}, {0x3C00, 0x1000},
                                    {0x7BFF, 0x4C00}, {0x03FF, 0x0001}, {0x8001, 0x0001}};
  for (std::size_t i = 0; i < std::size(edges); ++i) {
    a[i] = edges[i][0];
    b[i] = edges[i][1];
  }
  Tensor acc = Tensor::zeros({n}, DType::f16);
  Tensor g = Tensor::zeros({n}, DType::f16);
  std::copy(a.begin(), a.end(), acc.data<std::uint16_t>());
  std::copy(b.begin(), b.end(), g.data<std::uint16_t>());
  accumulate(acc, g);
  const std::uint16_t* got = acc.data<std::uint16_t>();
  std::int64_t bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double exact = static_cast<double>(half_bits_to_float(a[i])) +
                         static_cast<double>(half_bits_to_float(b[i]));
    std::uint16_t want = double_to_half_bits(exact);
    if (exact == 0.0) want = got[i] & 0x8000u;  // the sign of an exact zero is not at stake
    if (got[i] != want && ++bad < 10) {
      ADD_FAILURE() << std::hex << "0x" << a[i] << " + 0x" << b[i] << ": got 0x" << got[i]
                    << ", want 0x" << want;
    }
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(got[0], 0x6800u);  // 2048 + 1 = 2048
  EXPECT_EQ(got[1], 0x6802u);  // 2048 + 3 = 2052
  EXPECT_EQ(got[2], 0x3C00u);  // 1 + 2^-11 = 1
  EXPECT_EQ(got[3], 0x7C00u);  // 65504 + 16 = inf
}

// ---- fp32 ---------------------------------------------------------------------------------------

TEST(Stability, KahanF32ErrorIsFlatInK) {
  // Kahan's error is 2·eps·|sum| + O(k·eps²)·Σ|x|: with the normalisation's own rounding, a
  // few eps at every k, whatever the source.
  for (GradientSource s : {GradientSource::Mlp, GradientSource::RandomSign,
                           GradientSource::StagnationF32, GradientSource::NearF16Max}) {
    for (const CellResult& c : sweep(AccumMode::F32Kahan, s, 65536)) {
      EXPECT_LE(c.rel_error, 2.0 * kEps) << study::gradient_source_name(s) << " k = " << c.accum;
    }
  }
}

TEST(Stability, NaiveF32LosesSmallAddendsLinearlyInK) {
  // 1 then values s in [0.5, 1)·2^-24 < ulp(1)/2: every one is rounded away, so the error is
  // Σs / (1 + Σs) with E[s] = 0.375·eps: measured law rel_error ≈ 0.375·eps·(k - 1), and the
  // bound 0.5·eps·(k - 1) can never be exceeded.
  for (const CellResult& c : sweep(AccumMode::F32Naive, GradientSource::StagnationF32, 65536)) {
    const double km1 = static_cast<double>(c.accum - 1);
    EXPECT_LE(c.rel_error, 0.5 * kEps * km1 + 2 * kEps) << "k = " << c.accum;
    if (c.accum >= 64) {
      EXPECT_GE(c.rel_error, 0.35 * kEps * km1) << "k = " << c.accum;
      EXPECT_LE(c.rel_error, 0.40 * kEps * km1) << "k = " << c.accum;
    }
  }
  // Kahan keeps them all.
  EXPECT_LE(study::run_cell(AccumMode::F32Kahan, pool(GradientSource::StagnationF32), 65536, {})
                .rel_error,
            2 * kEps);
}

double loglog_slope(const std::vector<CellResult>& cells, std::int64_t from) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
  for (const CellResult& c : cells) {
    if (c.accum < from) continue;
    const double x = std::log2(static_cast<double>(c.accum));
    const double y = std::log2(c.rel_error);
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
    n += 1;
  }
  return (n * sxy - sx * sy) / (n * sxx - sx * sx);
}

TEST(Stability, NaiveF32RandomSignErrorGrowsLikeSqrtK) {
  // Random-sign addends: rounding errors of random sign, a random walk: the measured error is
  // ~0.15·eps·sqrt(k) (slope 1/2 on log-log axes), far below the worst-case bound eps·k.
  const std::vector<CellResult> cells =
      sweep(AccumMode::F32Naive, GradientSource::RandomSign, 65536);
  const double slope = loglog_slope(cells, 256);
  EXPECT_GT(slope, 0.3);
  EXPECT_LT(slope, 0.7);
  for (const CellResult& c : cells) {
    EXPECT_LE(c.rel_error, 0.5 * kEps * std::sqrt(static_cast<double>(c.accum)) + 2 * kEps)
        << "k = " << c.accum;
  }
  EXPECT_GT(cells.back().rel_error, 10 * kEps);  // it does grow
}

TEST(Stability, NaiveF32OnMlpGradientsStaysBelowBound) {
  // Realistic gradients have consistent-sign components, so the error grows faster than the
  // random walk's sqrt(k) once the sums are large: measured ~eps·k^0.9 (about 0.01·eps·k at
  // k = 2048, 3e-5 at k = 65536, 9e-4 at 10^6), far below the worst case (k - 1)·eps·Σ|x|/|Σx|.
  // The stated bound: 0.05·eps·k + 2 eps at every k.
  const std::vector<CellResult> cells = sweep(AccumMode::F32Naive, GradientSource::Mlp, 65536);
  for (const CellResult& c : cells) {
    EXPECT_LE(c.rel_error, 0.05 * kEps * static_cast<double>(c.accum) + 2 * kEps)
        << "k = " << c.accum;
  }
  EXPECT_GT(cells.back().rel_error, 10 * cells[6].rel_error);  // k = 65536 vs k = 64
  const double slope = loglog_slope(cells, 64);
  EXPECT_GT(slope, 0.4);
  EXPECT_LT(slope, 1.2);
}

// ---- fp16 ---------------------------------------------------------------------------------------

TEST(Stability, Fp16AccumulatorStagnatesExactlyWhereTheorySays) {
  // A constant addend c = 2^-6: the fp16 sum is exact (k·c) up to 2^11·c = 32, where c is half
  // an ulp; 32 + c ties to even (32): the 2049th addition is the first that changes nothing,
  // and nothing after it ever does.
  StudyOptions o;
  o.keep_values = true;
  const GradientPool constant(GradientSource::Constant, o);
  const std::vector<CellResult> cells =
      study::run_sweep(AccumMode::F16InF16, constant, {2047, 2048, 2049, 4096, 65536}, o);
  const float c = o.constant_addend;
  EXPECT_EQ(cells[0].acc[0], 2047 * c);
  EXPECT_EQ(cells[1].acc[0], 2048 * c);
  EXPECT_EQ(cells[2].acc[0], 2048 * c);  // stagnation starts at k = 2049
  EXPECT_EQ(cells[3].acc[0], 2048 * c);
  EXPECT_EQ(cells[4].acc[0], 2048 * c);
  EXPECT_EQ(cells[1].rel_error, 0.0);
  EXPECT_NEAR(cells[4].rel_error, 1.0 - 2048.0 / 65536.0, 1e-6);
  // The same addends into fp32 stay exact.
  EXPECT_EQ(study::run_cell(AccumMode::F16InF32, constant, 65536, o).rel_error, 0.0);

  // A constant that is not a power of two: addition stops changing the sum in the first binade
  // [2^E, 2^(E+1)) whose half-ulp 2^(E-11) exceeds c, so the sum stalls at the first power of
  // two above 2^11·c: 256 for c = half(0.1) (2^11·c = 204.75).
  o.constant_addend = round_to_half(0.1f);
  const GradientPool tenth(GradientSource::Constant, o);
  const double plateau = std::exp2(std::ceil(std::log2(2048.0 * o.constant_addend)));
  EXPECT_EQ(plateau, 256.0);
  const std::vector<CellResult> t = study::run_sweep(AccumMode::F16InF16, tenth, {4096, 65536}, o);
  EXPECT_EQ(t[0].acc[0], plateau);
  EXPECT_EQ(t[1].acc[0], plateau);
}

TEST(Stability, Fp16AccumulatorLosesSmallAddendsThatFp32Keeps) {
  // 1, then values below an fp16 half-ulp of 1: all lost in an fp16 accumulator (its error is
  // Σs / (1 + Σs)), kept in fp32.
  for (const CellResult& c : sweep(AccumMode::F16InF16, GradientSource::StagnationF16, 65536)) {
    if (c.accum < 2) continue;
    EXPECT_GT(c.rel_error, 0.25 * 0x1.0p-11 * static_cast<double>(c.accum - 1) /
                               (1.0 + 0x1.0p-11 * static_cast<double>(c.accum - 1)))
        << "k = " << c.accum;
  }
  for (const CellResult& c : sweep(AccumMode::F16InF32, GradientSource::StagnationF16, 65536)) {
    EXPECT_LT(c.rel_error, 1e-4) << "k = " << c.accum;  // only the addends' fp16 rounding
  }
}

TEST(Stability, Fp16AccumulatorOverflowsNearTheLargestHalf) {
  // Addends in [32752, 65504): one is finite, three always exceed 65504 (infinity).
  const std::vector<CellResult> cells =
      sweep(AccumMode::F16InF16, GradientSource::NearF16Max, 1024);
  EXPECT_EQ(cells[0].overflow_frac, 0.0);
  for (const CellResult& c : cells) {
    if (c.accum >= 4) {
      EXPECT_EQ(c.overflow_frac, 1.0) << "k = " << c.accum;
      EXPECT_TRUE(std::isinf(c.rel_error));
    }
  }
  // A static loss scale of 1024 overflows the gradients themselves; fp32 accumulation of the
  // unscaled fp16 gradients does not overflow.
  EXPECT_EQ(study::run_cell(AccumMode::F16StaticScale, pool(GradientSource::NearF16Max), 1, {})
                .overflow_frac,
            1.0);
  EXPECT_EQ(study::run_cell(AccumMode::F16InF32, pool(GradientSource::NearF16Max), 1024, {})
                .overflow_frac,
            0.0);
}

TEST(Stability, DynamicLossScalingRecoversFromOverflow) {
  // Near fp16's largest number with S = 2^16: every micro-batch overflows until S backs off to
  // 1 (16 drops); after growth_interval clean micro-batches S grows back to 2, overflows once
  // more and backs off again. Nothing non-finite reaches the sum, and the counted micro-batches
  // are summed to fp16 accuracy.
  StudyOptions o;
  o.dynamic_scaling.growth_interval = 100;
  const std::int64_t k = 1000;
  const CellResult c =
      study::run_cell(AccumMode::F16DynamicScale, pool(GradientSource::NearF16Max), k, o);
  EXPECT_EQ(c.min_loss_scale, 1.0f);
  EXPECT_EQ(c.max_loss_scale, 65536.0f);
  EXPECT_GE(c.growths, 5);               // grew back ...
  EXPECT_EQ(c.dropped, 16 + c.growths);  // ... and each growth overflowed once
  EXPECT_EQ(c.backoffs, c.dropped);
  EXPECT_EQ(c.overflow_frac, 0.0);
  EXPECT_LT(c.rel_error, 1e-4);
  // A static scale, same addends: everything is lost.
  EXPECT_EQ(study::run_cell(AccumMode::F16StaticScale, pool(GradientSource::NearF16Max), k, o)
                .overflow_frac,
            1.0);

  // Realistic gradients: the MLP's largest per-micro-batch gradients overflow at 2^16; the
  // scaler drops those few micro-batches, settles lower, and the result stays accurate.
  const CellResult m =
      study::run_cell(AccumMode::F16DynamicScale, pool(GradientSource::Mlp), 8192, StudyOptions());
  EXPECT_GE(m.dropped, 1);
  EXPECT_LT(m.loss_scale, 65536.0f);
  EXPECT_EQ(m.overflow_frac, 0.0);
  EXPECT_LT(m.rel_error, 1e-3);
}

TEST(Stability, LossScalingLosesFewerGradientsToUnderflow) {
  // Log-uniform in [2^-26, 2^-10]: without scaling the 1/16 below 2^-25 flush to zero (and
  // 3/4 are fp16 subnormals, with fewer bits); scaled by 2^16 (or 1024) none underflows.
  const CellResult plain =
      study::run_cell(AccumMode::F16InF32, pool(GradientSource::NearF16Min), 65536, {});
  const CellResult dynamic =
      study::run_cell(AccumMode::F16DynamicScale, pool(GradientSource::NearF16Min), 65536, {});
  const CellResult fixed =
      study::run_cell(AccumMode::F16StaticScale, pool(GradientSource::NearF16Min), 65536, {});
  EXPECT_NEAR(plain.underflow_frac, 1.0 / 16.0, 0.01);
  EXPECT_EQ(dynamic.underflow_frac, 0.0);
  EXPECT_EQ(fixed.underflow_frac, 0.0);
  EXPECT_LT(dynamic.underflow_frac, plain.underflow_frac);
  EXPECT_LT(dynamic.rel_error, plain.rel_error);
  EXPECT_EQ(dynamic.overflow_frac, 0.0);  // it grows until the largest overflow, then drops
}

// ---- the study's API ----------------------------------------------------------------------------

TEST(Stability, SweepEqualsIndependentCells) {
  StudyOptions o;
  o.keep_values = true;
  o.dynamic_scaling.growth_interval = 7;
  const std::vector<std::int64_t> ks = {1, 5, 64, 100};
  for (AccumMode m : study::all_accum_modes()) {
    const std::vector<CellResult> s = study::run_sweep(m, pool(GradientSource::Mlp), ks, o);
    for (std::size_t i = 0; i < ks.size(); ++i) {
      const CellResult c = study::run_cell(m, pool(GradientSource::Mlp), ks[i], o);
      EXPECT_EQ(s[i].acc, c.acc) << study::accum_mode_name(m) << " k = " << ks[i];
      // NaN (every micro-batch dropped) compares equal to NaN here.
      EXPECT_TRUE(s[i].rel_error == c.rel_error ||
                  (std::isnan(s[i].rel_error) && std::isnan(c.rel_error)));
      EXPECT_EQ(s[i].dropped, c.dropped);
    }
  }
}

TEST(Stability, ReferenceIsTheFloat64SumOfTheSameAddends) {
  StudyOptions o;
  o.keep_values = true;
  const GradientPool& p = pool(GradientSource::Mlp);
  const std::int64_t k = 300;
  const CellResult c = study::run_cell(AccumMode::F32Naive, p, k, o);
  ASSERT_EQ(static_cast<std::int64_t>(c.reference.size()), p.entries());
  const double count = static_cast<double>(k * p.elements_per_micro_batch());
  for (std::int64_t j = 0; j < p.entries(); j += 17) {
    double sum = 0.0;
    for (std::int64_t i = 0; i < k; ++i)
      sum += static_cast<double>(p.addend(i)[j]);
    EXPECT_EQ(c.reference[j], sum / count);
  }
  EXPECT_EQ(p.elements_per_micro_batch(), o.mlp_micro_batch * o.mlp_out);
  EXPECT_EQ(p.entries(),
            o.mlp_in * o.mlp_hidden + o.mlp_hidden + o.mlp_hidden * o.mlp_out + o.mlp_out);
}

TEST(Stability, PoolsCycleAndNamesRoundTrip) {
  StudyOptions o;
  o.pool_rows = 4;
  const GradientPool s(GradientSource::StagnationF32, o);
  EXPECT_EQ(s.row_of(3), 3);
  EXPECT_EQ(s.row_of(4), 1);  // the large first addend is not repeated
  EXPECT_EQ(s.row_of(6), 3);
  EXPECT_EQ(s.addend(0)[0], 1.0f);
  EXPECT_LT(s.addend(5)[0], 0x1.0p-24f);
  for (AccumMode m : study::all_accum_modes()) {
    AccumMode back{};
    ASSERT_TRUE(study::accum_mode_from_name(study::accum_mode_name(m), &back));
    EXPECT_EQ(back, m);
  }
  for (GradientSource g : study::all_gradient_sources()) {
    GradientSource back{};
    ASSERT_TRUE(study::gradient_source_from_name(study::gradient_source_name(g), &back));
    EXPECT_EQ(back, g);
  }
  AccumMode m{};
  EXPECT_FALSE(study::accum_mode_from_name("fp8", &m));
  EXPECT_EQ(study::doubling_counts(1), (std::vector<std::int64_t>{1}));
  EXPECT_EQ(study::doubling_counts(10), (std::vector<std::int64_t>{1, 2, 4, 8, 10}));
  EXPECT_EQ(study::doubling_counts(16).back(), 16);
}

TEST(Stability, BadArgumentsAreErrors) {
  const GradientPool& p = pool(GradientSource::RandomSign);
  EXPECT_THROW(study::run_sweep(AccumMode::F32Naive, p, {}, {}), Error);
  EXPECT_THROW(study::run_sweep(AccumMode::F32Naive, p, {4, 2}, {}), Error);
  EXPECT_THROW(study::run_cell(AccumMode::F32Naive, p, 0, {}), Error);
  StudyOptions o;
  o.pool_rows = 1;
  EXPECT_THROW(GradientPool(GradientSource::RandomSign, o), Error);
  o = StudyOptions();
  o.static_scale = 0.0f;
  EXPECT_THROW(study::run_cell(AccumMode::F16StaticScale, p, 1, o), Error);
  if (!cuda_available()) {
    o = StudyOptions();
    o.device = Device::CUDA;
    EXPECT_THROW(study::run_cell(AccumMode::F32Naive, p, 1, o), Error);
  }
}

}  // namespace
}  // namespace gradaccum
