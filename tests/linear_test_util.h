// Shared checks of the linear layer products (tests/cpu/linear_test.cpp, tests/gpu/linear_test.cpp)
// against float64 references, with condition-aware tolerances:
//   |got - ref| <= bound_tol * Σ|terms| + value_tol * |ref|
// where bound_tol covers the fp32 accumulation and value_tol the one rounding of an f16 output.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/tensor.h"
#include "kernels/gemm_config.h"
#include "kernels/linear.h"
#include "test_util.h"

namespace gradaccum::test {

// Float64 values with the sum of |terms| of each (the scale of its rounding error).
struct Ref {
  std::vector<double> value;
  std::vector<double> bound;
};

struct Tolerance {
  double bound_tol;  // times Σ|terms|
  double value_tol;  // times |ref|
};

// Tolerance of a product with chains of length k: fp32 (or fp16-input, fp32-accumulated)
// accumulation, plus one rounding to f16 when the output is f16.
inline Tolerance tolerance_for(DType in, bool f16_output, std::int64_t k) {
  const double u = std::ldexp(1.0, -24);  // fp32 unit roundoff
  Tolerance t{};
  t.bound_tol = (in == DType::f32 ? 2.0 + std::sqrt(static_cast<double>(k))
                                  : 4.0 + static_cast<double>(k) / 8.0) *
                2 * u;
  t.value_tol = f16_output ? std::ldexp(1.0, -11) * 1.001 : 0.0;
  return t;
}

inline void expect_close(const std::vector<float>& got, const Ref& ref, Tolerance tol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), ref.value.size()) << what;
  int reported = 0;
  double worst = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - ref.value[i]);
    // An f16 output below the normal range rounds with an absolute step of 2^-25.
    const double allowed = tol.bound_tol * ref.bound[i] + tol.value_tol * std::fabs(ref.value[i]) +
                           (tol.value_tol > 0 ? std::ldexp(1.0, -25) : 0.0);
    if (!(err <= allowed)) {
      if (reported++ < 5) {
        ADD_FAILURE() << what << ": element " << i << " got " << got[i] << ", want " << ref.value[i]
                      << " (error " << err << " > allowed " << allowed << ")";
      }
    }
    if (ref.bound[i] > 0) worst = std::max(worst, err / ref.bound[i]);
  }
  if (reported > 5) ADD_FAILURE() << what << ": " << reported << " elements out of tolerance";
  ::testing::Test::RecordProperty(what, std::to_string(worst));
}

inline std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// y = x·wᵀ (+ b), ReLU optional.
inline Ref ref_forward(const std::vector<float>& x, const std::vector<float>& w,
                       const std::vector<float>* b, std::int64_t rows, std::int64_t in,
                       std::int64_t out, bool relu) {
  Ref r{std::vector<double>(static_cast<std::size_t>(rows * out)),
        std::vector<double>(static_cast<std::size_t>(rows * out))};
  for (std::int64_t n = 0; n < rows; ++n) {
    for (std::int64_t o = 0; o < out; ++o) {
      double s = 0, a = 0;
      for (std::int64_t i = 0; i < in; ++i) {
        const double t = static_cast<double>(x[n * in + i]) * w[o * in + i];
        s += t;
        a += std::fabs(t);
      }
      if (b != nullptr) {
        s += (*b)[o];
        a += std::fabs((*b)[o]);
      }
      if (relu && s < 0) s = 0;
      r.value[n * out + o] = s;
      r.bound[n * out + o] = a;
    }
  }
  return r;
}

// dx = old (when given) + dy·w, masked by relu_out > 0 when given.
inline Ref ref_backward_input(const std::vector<float>& dy, const std::vector<float>& w,
                              const std::vector<float>* old, const std::vector<float>* relu_out,
                              std::int64_t rows, std::int64_t in, std::int64_t out) {
  Ref r{std::vector<double>(static_cast<std::size_t>(rows * in)),
        std::vector<double>(static_cast<std::size_t>(rows * in))};
  for (std::int64_t n = 0; n < rows; ++n) {
    for (std::int64_t i = 0; i < in; ++i) {
      const std::size_t idx = static_cast<std::size_t>(n * in + i);
      const double base = old != nullptr ? (*old)[idx] : 0.0;
      if (relu_out != nullptr && !((*relu_out)[idx] > 0)) {
        r.value[idx] = base;
        r.bound[idx] = 0;
        continue;
      }
      double s = base, a = std::fabs(base);
      for (std::int64_t o = 0; o < out; ++o) {
        const double t = static_cast<double>(dy[n * out + o]) * w[o * in + i];
        s += t;
        a += std::fabs(t);
      }
      r.value[idx] = s;
      r.bound[idx] = a;
    }
  }
  return r;
}

// dw = old + dyᵀ·x (old may be null), db = old + Σ_rows dy.
inline Ref ref_dw(const std::vector<float>& dy, const std::vector<float>& x,
                  const std::vector<double>* old, std::int64_t rows, std::int64_t in,
                  std::int64_t out) {
  Ref r{std::vector<double>(static_cast<std::size_t>(out * in)),
        std::vector<double>(static_cast<std::size_t>(out * in))};
  for (std::int64_t o = 0; o < out; ++o) {
    for (std::int64_t i = 0; i < in; ++i) {
      const std::size_t idx = static_cast<std::size_t>(o * in + i);
      double s = old != nullptr ? (*old)[idx] : 0.0;
      double a = std::fabs(s);
      for (std::int64_t n = 0; n < rows; ++n) {
        const double t = static_cast<double>(dy[n * out + o]) * x[n * in + i];
        s += t;
        a += std::fabs(t);
      }
      r.value[idx] = s;
      r.bound[idx] = a;
    }
  }
  return r;
}

inline Ref ref_db(const std::vector<float>& dy, const std::vector<double>* old, std::int64_t rows,
                  std::int64_t out) {
  Ref r{std::vector<double>(static_cast<std::size_t>(out)),
        std::vector<double>(static_cast<std::size_t>(out))};
  for (std::int64_t o = 0; o < out; ++o) {
    double s = old != nullptr ? (*old)[o] : 0.0;
    double a = std::fabs(s);
    for (std::int64_t n = 0; n < rows; ++n) {
      s += dy[n * out + o];
      a += std::fabs(dy[n * out + o]);
    }
    r.value[o] = s;
    r.bound[o] = a;
  }
  return r;
}

// The Kahan step of the accumulate convention (true sum = acc + comp), written out here
// independently of the library's own helper.
inline void kahan_step(float& acc, float& comp, float y) {
  volatile float yc = y + comp;
  volatile float t = acc + yc;
  volatile float d = t - acc;
  comp = yc - d;
  acc = t;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * 4) == 0);
}

inline std::string shape_name(std::int64_t rows, std::int64_t in, std::int64_t out, DType dtype) {
  return "rows=" + std::to_string(rows) + " in=" + std::to_string(in) +
         " out=" + std::to_string(out) + " " + dtype_name(dtype);
}

// Every product and mode of a layer of this shape on `device` with `config`, against float64.
// `exact_kahan`: the Kahan epilogue must equal kahan_add(old, comp, overwrite result) bit for
// bit (true for the hand-written kernels, whose chain from 0 is the same in both calls).
inline void check_linear_layer(std::int64_t rows, std::int64_t in, std::int64_t out, DType dtype,
                               Device device, const GemmConfig& config, bool exact_kahan,
                               std::uint64_t seed) {
  const std::string name = shape_name(rows, in, out, dtype);
  SCOPED_TRACE(name);
  const bool half_out = dtype == DType::f16;
  const Tensor x = random_tensor({rows, in}, seed, dtype, device);
  const Tensor w = random_tensor({out, in}, seed + 1, dtype, device);
  const Tensor b = random_tensor({out}, seed + 2, dtype, device);
  const Tensor dy = random_tensor({rows, out}, seed + 3, dtype, device);
  const Tensor relu_out = random_tensor({rows, in}, seed + 4, dtype, device);
  const std::vector<float> xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector(),
                           dyv = dy.to_vector(), rv = relu_out.to_vector();

  // Forward: plain, with bias, with bias and ReLU.
  for (int variant = 0; variant < 3; ++variant) {
    Tensor y = poisoned({rows, out}, dtype, device);
    const bool with_bias = variant >= 1, relu = variant == 2;
    linear_forward(x, w, with_bias ? &b : nullptr, y, relu, config);
    expect_close(y.to_vector(), ref_forward(xv, wv, with_bias ? &bv : nullptr, rows, in, out, relu),
                 tolerance_for(dtype, half_out, in),
                 "forward" + std::string(with_bias ? "+bias" : "") + (relu ? "+relu" : ""));
  }

  // Input gradient: Overwrite / Accumulate, with and without the ReLU mask; Ignore.
  const Tensor dx_old = random_tensor({rows, in}, seed + 5, dtype, device);
  const std::vector<float> dx_oldv = dx_old.to_vector();
  for (bool masked : {false, true}) {
    Tensor dx = poisoned({rows, in}, dtype, device);
    linear_backward_input(dy, w, dx, GradientMode::Overwrite, masked ? &relu_out : nullptr, config);
    expect_close(
        dx.to_vector(), ref_backward_input(dyv, wv, nullptr, masked ? &rv : nullptr, rows, in, out),
        tolerance_for(dtype, half_out, out), std::string("dx overwrite") + (masked ? "+mask" : ""));
    Tensor dxa = dx_old.clone();
    linear_backward_input(dy, w, dxa, GradientMode::Accumulate, masked ? &relu_out : nullptr,
                          config);
    expect_close(dxa.to_vector(),
                 ref_backward_input(dyv, wv, &dx_oldv, masked ? &rv : nullptr, rows, in, out),
                 tolerance_for(dtype, half_out, out + 1),
                 std::string("dx accumulate") + (masked ? "+mask" : ""));
  }
  {
    Tensor dx = dx_old.clone();
    linear_backward_input(dy, w, dx, GradientMode::Ignore, nullptr, config);
    EXPECT_TRUE(same_bits(dx.to_vector(), dx_oldv)) << "dx Ignore must leave dx unchanged";
  }

  // Parameter gradients: Overwrite, Accumulate, Kahan, Ignore.
  const Tensor dw_old = random_tensor({out, in}, seed + 6, DType::f32, device);
  const Tensor db_old = random_tensor({out}, seed + 7, DType::f32, device);
  const std::vector<float> dw_oldv = dw_old.to_vector(), db_oldv = db_old.to_vector();
  const std::vector<double> dw_oldd = to_double(dw_oldv), db_oldd = to_double(db_oldv);
  const Tolerance ptol = tolerance_for(dtype, false, rows + 1);

  Tensor dw = poisoned({out, in}, DType::f32, device);
  Tensor db = poisoned({out}, DType::f32, device);
  linear_backward_params(dy, x, dw, &db, GradientMode::Overwrite, nullptr, config);
  const std::vector<float> dw_over = dw.to_vector(), db_over = db.to_vector();
  expect_close(dw_over, ref_dw(dyv, xv, nullptr, rows, in, out), ptol, "dw overwrite");
  expect_close(db_over, ref_db(dyv, nullptr, rows, out), ptol, "db overwrite");

  Tensor dwa = dw_old.clone();
  Tensor dba = db_old.clone();
  linear_backward_params(dy, x, dwa, &dba, GradientMode::Accumulate, nullptr, config);
  expect_close(dwa.to_vector(), ref_dw(dyv, xv, &dw_oldd, rows, in, out), ptol, "dw accumulate");
  expect_close(dba.to_vector(), ref_db(dyv, &db_oldd, rows, out), ptol, "db accumulate");

  // Without db: dw alone is the same.
  Tensor dw_only = poisoned({out, in}, DType::f32, device);
  linear_backward_params(dy, x, dw_only, nullptr, GradientMode::Overwrite, nullptr, config);
  if (exact_kahan) {
    EXPECT_TRUE(same_bits(dw_only.to_vector(), dw_over)) << "dw without db differs";
  } else {
    expect_close(dw_only.to_vector(), ref_dw(dyv, xv, nullptr, rows, in, out), ptol, "dw only");
  }

  // Kahan epilogue: (acc, comp) start from random values; the result's acc + comp is the sum.
  {
    Tensor kw = dw_old.clone();
    Tensor kb = db_old.clone();
    Tensor kwc = random_tensor({out, in}, seed + 8, DType::f32, device, -1e-6f, 1e-6f);
    Tensor kbc = random_tensor({out}, seed + 9, DType::f32, device, -1e-6f, 1e-6f);
    const std::vector<float> kwc0 = kwc.to_vector(), kbc0 = kbc.to_vector();
    KahanState ks{&kwc, &kbc};
    linear_backward_params(dy, x, kw, &kb, GradientMode::Accumulate, &ks, config);
    const std::vector<float> kwv = kw.to_vector(), kwcv = kwc.to_vector(), kbv = kb.to_vector(),
                             kbcv = kbc.to_vector();
    std::vector<double> old_w(dw_oldd), old_b(db_oldd);
    for (std::size_t i = 0; i < old_w.size(); ++i)
      old_w[i] += kwc0[i];
    for (std::size_t i = 0; i < old_b.size(); ++i)
      old_b[i] += kbc0[i];
    const Ref rw = ref_dw(dyv, xv, &old_w, rows, in, out);
    const Ref rb = ref_db(dyv, &old_b, rows, out);
    // The sum (acc + comp) is as accurate as the micro-batch's own chain.
    std::vector<double> sum_w(kwv.size()), sum_b(kbv.size());
    for (std::size_t i = 0; i < kwv.size(); ++i)
      sum_w[i] = static_cast<double>(kwv[i]) + kwcv[i];
    for (std::size_t i = 0; i < kbv.size(); ++i)
      sum_b[i] = static_cast<double>(kbv[i]) + kbcv[i];
    int bad = 0;
    for (std::size_t i = 0; i < sum_w.size(); ++i) {
      if (!(std::fabs(sum_w[i] - rw.value[i]) <= ptol.bound_tol * rw.bound[i] + 1e-12)) ++bad;
    }
    for (std::size_t i = 0; i < sum_b.size(); ++i) {
      if (!(std::fabs(sum_b[i] - rb.value[i]) <= ptol.bound_tol * rb.bound[i] + 1e-12)) ++bad;
    }
    EXPECT_EQ(bad, 0) << "Kahan (acc + comp) differs from the float64 sum";
    if (exact_kahan) {
      std::vector<float> ew(dw_oldv), ewc(kwc0), eb(db_oldv), ebc(kbc0);
      for (std::size_t i = 0; i < ew.size(); ++i)
        kahan_step(ew[i], ewc[i], dw_over[i]);
      for (std::size_t i = 0; i < eb.size(); ++i)
        kahan_step(eb[i], ebc[i], db_over[i]);
      EXPECT_TRUE(same_bits(kwv, ew) && same_bits(kwcv, ewc)) << "Kahan dw epilogue";
      EXPECT_TRUE(same_bits(kbv, eb) && same_bits(kbcv, ebc)) << "Kahan db epilogue";
    }
    // Overwrite with Kahan buffers: the plain result and a zero compensation.
    linear_backward_params(dy, x, kw, &kb, GradientMode::Overwrite, &ks, config);
    expect_close(kw.to_vector(), ref_dw(dyv, xv, nullptr, rows, in, out), ptol, "kahan overwrite");
    EXPECT_TRUE(same_bits(kwc.to_vector(), std::vector<float>(kwcv.size(), 0.0f)));
    EXPECT_TRUE(same_bits(kbc.to_vector(), std::vector<float>(kbcv.size(), 0.0f)));
  }
  {
    Tensor dwi = dw_old.clone();
    Tensor dbi = db_old.clone();
    linear_backward_params(dy, x, dwi, &dbi, GradientMode::Ignore, nullptr, config);
    EXPECT_TRUE(same_bits(dwi.to_vector(), dw_oldv) && same_bits(dbi.to_vector(), db_oldv))
        << "Ignore must leave dw and db unchanged";
  }
}

// Many micro-batches whose contributions are each below half an ulp of the accumulator: plain
// accumulation loses them all, the Kahan epilogue keeps their sum in (acc, comp).
inline void check_kahan_keeps_small_contributions(Device device, const GemmConfig& config) {
  const std::int64_t rows = 4, in = 3, out = 2, steps = 200;
  // dy·x per element: 4 rows of 2^-13 * 2^-15 = 2^-26, a quarter of 1.0's half ulp (2^-24):
  // plain addition to 1.0 loses it every time; all sums here are exact multiples of 2^-26.
  const float v = std::ldexp(1.0f, -13);
  const Tensor dy = Tensor::full({rows, out}, v, DType::f32, device);
  const Tensor x = Tensor::full({rows, in}, v / 4, DType::f32, device);
  Tensor dw = Tensor::full({out, in}, 1.0f, DType::f32, device);
  Tensor dwc = Tensor::zeros({out, in}, DType::f32, device);
  Tensor db = Tensor::full({out}, 1.0f, DType::f32, device);
  Tensor dbc = Tensor::zeros({out}, DType::f32, device);
  Tensor plain = Tensor::full({out, in}, 1.0f, DType::f32, device);
  KahanState ks{&dwc, &dbc};
  for (int s = 0; s < steps; ++s) {
    linear_backward_params(dy, x, dw, &db, GradientMode::Accumulate, &ks, config);
    linear_backward_params(dy, x, plain, nullptr, GradientMode::Accumulate, nullptr, config);
  }
  const double want_w = 1.0 + steps * std::ldexp(1.0, -26);
  const double want_b = 1.0 + steps * rows * static_cast<double>(v);
  const std::vector<float> w = dw.to_vector(), wc = dwc.to_vector(), p = plain.to_vector();
  const std::vector<float> b = db.to_vector(), bc = dbc.to_vector();
  for (std::size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(static_cast<double>(w[i]) + wc[i], want_w) << "Kahan dw element " << i;
    EXPECT_EQ(p[i], 1.0f) << "plain accumulation was expected to lose the contributions";
  }
  for (std::size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(static_cast<double>(b[i]) + bc[i], want_b) << "Kahan db element " << i;
  }
}

// dw and db over all rows in one call, bit for bit the same as over rows [0, a) then [a, rows)
// with Accumulate (starting from Overwrite, and from a stored accumulator).
inline void check_split_invariance(std::int64_t rows, std::int64_t in, std::int64_t out,
                                   std::int64_t a, DType dtype, Device device,
                                   const GemmConfig& config, std::uint64_t seed) {
  SCOPED_TRACE(shape_name(rows, in, out, dtype) + " split at " + std::to_string(a));
  const Tensor x = random_tensor({rows, in}, seed, dtype, device);
  const Tensor dy = random_tensor({rows, out}, seed + 1, dtype, device);
  const Tensor x0 = x.rows(0, a), x1 = x.rows(a, rows);
  const Tensor dy0 = dy.rows(0, a), dy1 = dy.rows(a, rows);
  const Tensor dw_old = random_tensor({out, in}, seed + 2, DType::f32, device);
  const Tensor db_old = random_tensor({out}, seed + 3, DType::f32, device);
  for (GradientMode first : {GradientMode::Overwrite, GradientMode::Accumulate}) {
    Tensor dw = dw_old.clone(), db = db_old.clone();
    linear_backward_params(dy, x, dw, &db, first, nullptr, config);
    Tensor dw2 = dw_old.clone(), db2 = db_old.clone();
    linear_backward_params(dy0, x0, dw2, &db2, first, nullptr, config);
    linear_backward_params(dy1, x1, dw2, &db2, GradientMode::Accumulate, nullptr, config);
    EXPECT_TRUE(same_bits(dw.to_vector(), dw2.to_vector()))
        << "dw depends on the micro-batch split (first mode "
        << (first == GradientMode::Overwrite ? "Overwrite" : "Accumulate") << ")";
    EXPECT_TRUE(same_bits(db.to_vector(), db2.to_vector())) << "db depends on the split";
  }
}

}  // namespace gradaccum::test
