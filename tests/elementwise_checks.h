// Checks of the elementwise ops (ReLU, L1 loss, accumulation, SGD) shared by the CPU tests
// (tests/cpu/*) and the GPU tests (tests/gpu/*): each runs an op on one device against a
// float64 reference and returns the result on the host, so that the GPU tests can also compare
// CUDA with the CPU bit for bit.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <limits>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/tensor.h"
#include "kernels/accumulate.h"
#include "kernels/gradient_mode.h"
#include "kernels/l1_loss.h"
#include "kernels/nonfinite_flag.h"
#include "kernels/relu.h"
#include "kernels/sgd.h"
#include "kernels/window_scalars.h"
#include "test_util.h"

namespace gradaccum::test::ew {

// Odd sizes, a scalar, zero-size tensors and higher ranks.
inline std::vector<Shape> test_shapes() {
  return {Shape{},  Shape{1},    Shape{3},     Shape{17},      Shape{1000},   Shape{4097},
          Shape{0}, Shape{0, 5}, Shape{3, 17}, Shape{2, 3, 5}, Shape{7, 129}, Shape{31, 33}};
}

inline std::string case_name(const Shape& s, DType dt) {
  return s.str() + " " + dtype_name(dt);
}

// The value a single rounding of the exact result to `dt` gives.
inline double round_to(double v, DType dt) {
  if (dt == DType::f32) return static_cast<double>(static_cast<float>(v));
  return static_cast<double>(half_bits_to_float(double_to_half_bits(v)));
}
// One f32 operation: the exact result (a double here, exact or correctly rounded twice, which
// is innocuous since 53 >= 2 * 24 + 2) rounded to f32.
inline double f32(double v) {
  return static_cast<double>(static_cast<float>(v));
}

inline std::vector<double> widen(const std::vector<float>& v) {
  return {v.begin(), v.end()};
}

// Exact comparison (NaN matches NaN); reports the number of mismatches and the first one.
inline void expect_values(const std::vector<float>& got, const std::vector<double>& want,
                          const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  std::size_t bad = 0;
  std::size_t first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool same =
        std::isnan(want[i]) ? std::isnan(got[i]) : static_cast<double>(got[i]) == want[i];
    if (!same && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": first mismatch at element " << first << ": got " << got[first]
                     << ", want " << want[first];
}

// Raw bytes of a tensor (copied to the host).
inline std::vector<std::uint8_t> bytes_of(const Tensor& t) {
  const Tensor h = t.to(Device::CPU);
  std::vector<std::uint8_t> b(h.nbytes());
  if (!b.empty()) std::memcpy(b.data(), h.raw_data(), b.size());
  return b;
}

// Bit-for-bit equality of two tensors (any devices), reporting the first differing element.
inline void expect_same_bits(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  const std::vector<std::uint8_t> x = bytes_of(a);
  const std::vector<std::uint8_t> y = bytes_of(b);
  const std::size_t es = dtype_size(a.dtype());
  std::size_t bad = 0;
  std::size_t first = 0;
  for (std::size_t i = 0; i < x.size(); i += es) {
    if (std::memcmp(&x[i], &y[i], es) != 0 && bad++ == 0) first = i / es;
  }
  if (bad != 0) {
    const std::vector<float> va = a.to_vector();
    const std::vector<float> vb = b.to_vector();
    ADD_FAILURE() << what << ": " << bad << " elements differ in their bits, first at " << first
                  << ": " << va[first] << " vs " << vb[first];
  }
}

// An error whose message contains `needle`.
#define GA_EXPECT_ERROR(stmt, needle)                                                      \
  do {                                                                                     \
    try {                                                                                  \
      stmt;                                                                                \
      ADD_FAILURE() << "expected gradaccum::Error from " #stmt;                            \
    } catch (const ::gradaccum::Error& e) {                                                \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)                     \
          << "message of " #stmt " does not mention \"" << (needle) << "\": " << e.what(); \
    }                                                                                      \
  } while (0)

inline Tensor scalar(float v, Device dev) {
  return Tensor::from_vector({v}, {1}, DType::f32, dev);
}

// ---- ReLU ---------------------------------------------------------------------------------

inline Tensor check_relu_forward(Device dev, const Shape& s, DType dt, std::uint64_t seed) {
  SCOPED_TRACE("relu_forward " + case_name(s, dt));
  const Tensor x = random_tensor(s, seed, dt, dev, -2.0f, 2.0f);
  Tensor y = poisoned(s, dt, dev);
  relu_forward(x, y);
  const std::vector<float> xv = x.to_vector();
  std::vector<double> want(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i)
    want[i] = std::max(0.0, static_cast<double>(xv[i]));
  expect_values(y.to_vector(), want, "y");
  return y.to(Device::CPU);
}

// y: a ReLU output (about half zeros), as the backward gets it.
inline Tensor relu_output(const Shape& s, DType dt, Device dev, std::uint64_t seed) {
  std::vector<float> v = random_values(s.numel(), seed);
  for (float& x : v)
    x = std::max(x, 0.0f);
  return Tensor::from_vector(v, s, dt, dev);
}

inline Tensor check_relu_backward(Device dev, const Shape& s, DType dt, GradientMode mode,
                                  std::uint64_t seed) {
  SCOPED_TRACE("relu_backward " + case_name(s, dt) + " mode " +
               std::to_string(static_cast<int>(mode)));
  const Tensor dy = random_tensor(s, seed, dt, dev, -4.0f, 4.0f);
  const Tensor y = relu_output(s, dt, dev, seed + 1);
  Tensor dx = mode == GradientMode::Overwrite ? poisoned(s, dt, dev)
                                              : random_tensor(s, seed + 2, dt, dev, -4.0f, 4.0f);
  const std::vector<float> before = dx.to_vector();
  relu_backward(dy, y, dx, mode);
  const std::vector<float> g = dy.to_vector();
  const std::vector<float> m = y.to_vector();
  std::vector<double> want(g.size());
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double gi = m[i] > 0.0f ? g[i] : 0.0;
    switch (mode) {
      case GradientMode::Ignore:
        want[i] = before[i];
        break;
      case GradientMode::Overwrite:
        want[i] = gi;
        break;
      case GradientMode::Accumulate:
        want[i] = round_to(static_cast<double>(before[i]) + gi, dt);
        break;
    }
  }
  expect_values(dx.to_vector(), want, "dx");
  if (mode == GradientMode::Accumulate) {
    // Accumulate == Overwrite + previous contents (one rounding).
    Tensor fresh = poisoned(s, dt, dev);
    relu_backward(dy, y, fresh, GradientMode::Overwrite);
    const std::vector<float> o = fresh.to_vector();
    std::vector<double> sum(o.size());
    for (std::size_t i = 0; i < o.size(); ++i) {
      sum[i] = round_to(static_cast<double>(before[i]) + o[i], dt);
    }
    expect_values(dx.to_vector(), sum, "accumulate vs overwrite + previous");
  }
  return dx.to(Device::CPU);
}

inline void check_relu_errors(Device dev) {
  Tensor x = random_tensor({4, 3}, 1, DType::f32, dev);
  Tensor y = Tensor::empty({4, 3}, DType::f32, dev);
  Tensor wrong_shape = Tensor::empty({3, 4}, DType::f32, dev);
  Tensor wrong_dtype = Tensor::empty({4, 3}, DType::f16, dev);
  GA_EXPECT_ERROR(relu_forward(x, wrong_shape), "shape");
  GA_EXPECT_ERROR(relu_forward(x, wrong_dtype), "dtype");
  GA_EXPECT_ERROR(relu_forward(x, x), "alias");
  GA_EXPECT_ERROR(relu_forward(Tensor(), y), "undefined");
  GA_EXPECT_ERROR(relu_backward(x, y, wrong_shape, GradientMode::Overwrite), "shape");
  GA_EXPECT_ERROR(relu_backward(x, wrong_shape, y, GradientMode::Overwrite), "shape");
  GA_EXPECT_ERROR(relu_backward(x, y, wrong_dtype, GradientMode::Accumulate), "dtype");
  GA_EXPECT_ERROR(relu_backward(x, wrong_dtype, y, GradientMode::Accumulate), "dtype");
}

// ---- L1 loss ------------------------------------------------------------------------------

// Σ|pred - target| in float64 of the values the tensors hold.
inline double l1_sum_reference(const Tensor& pred, const Tensor& target) {
  const std::vector<float> p = pred.to_vector();
  const std::vector<float> t = target.to_vector();
  double s = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i)
    s += std::fabs(static_cast<double>(p[i]) - t[i]);
  return s;
}

// Forward in the given mode; returns the loss. Checks against float64 within the error bound of
// an f32 chain of positive terms (each |p - t| rounded once, each addition once).
inline float check_l1_forward(Device dev, const Shape& s, DType dt, GradientMode mode,
                              std::uint64_t seed) {
  SCOPED_TRACE("l1_loss_forward " + case_name(s, dt) + " mode " +
               std::to_string(static_cast<int>(mode)));
  const Tensor pred = random_tensor(s, seed, dt, dev);
  const Tensor target = random_tensor(s, seed + 1, dt, dev);
  const float start = 1.5f + 0.5f * random_values(1, seed + 2)[0];  // in (1, 2)
  Tensor loss =
      mode == GradientMode::Overwrite ? poisoned({1}, DType::f32, dev) : scalar(start, dev);
  l1_loss_forward(pred, target, loss, mode);
  const float got = loss.to_vector()[0];
  if (mode == GradientMode::Ignore) {
    EXPECT_EQ(got, start);
    return got;
  }
  const double sum = l1_sum_reference(pred, target);
  const double want = mode == GradientMode::Accumulate ? start + sum : sum;
  const double n = static_cast<double>(s.numel()) + 2.0;
  const double tol =
      n * std::ldexp(1.0, -23) * (sum + (mode == GradientMode::Accumulate ? start : 0.0));
  EXPECT_TRUE(std::isfinite(got));
  EXPECT_LE(std::fabs(static_cast<double>(got) - want), tol) << "got " << got << ", want " << want;
  return got;
}

// The forward over rows [0, N) in one call equals, bit for bit, the same rows split into
// micro-batches (Overwrite on the first, Accumulate on the rest).
inline void check_l1_split_invariance(Device dev, const Shape& s, DType dt,
                                      const std::vector<std::int64_t>& cuts, std::uint64_t seed) {
  SCOPED_TRACE("l1 split " + case_name(s, dt));
  const Tensor pred = random_tensor(s, seed, dt, dev);
  const Tensor target = random_tensor(s, seed + 1, dt, dev);
  Tensor whole = poisoned({1}, DType::f32, dev);
  l1_loss_forward(pred, target, whole, GradientMode::Overwrite);
  Tensor split = poisoned({1}, DType::f32, dev);
  std::int64_t begin = 0;
  std::vector<std::int64_t> ends = cuts;
  ends.push_back(s[0]);
  for (std::int64_t end : ends) {
    const Tensor p = pred.rows(begin, end);
    const Tensor t = target.rows(begin, end);
    l1_loss_forward(p, t, split, begin == 0 ? GradientMode::Overwrite : GradientMode::Accumulate);
    begin = end;
  }
  expect_same_bits(split, whole, "split vs whole");
}

// The compensated chain (extras.compensation): whole batch against a split of it with the
// compensation carried, bit for bit; and within an ulp or two of the float64 sum, where the plain
// chain is further off. Returns the compensated sum (loss_sum + compensation, as a double).
inline double check_l1_compensated(Device dev, DType dt, std::uint64_t seed) {
  SCOPED_TRACE(std::string("l1 compensated chain ") + dtype_name(dt));
  const Shape s{20000, 3};
  const Tensor pred = random_tensor(s, seed, dt, dev, 0.0f, 2.0f);
  const Tensor target = random_tensor(s, seed + 1, dt, dev, -2.0f, 0.0f);
  Tensor whole = poisoned({1}, DType::f32, dev), whole_comp = poisoned({1}, DType::f32, dev);
  L1ForwardExtras ex;
  ex.compensation = &whole_comp;
  l1_loss_forward(pred, target, whole, GradientMode::Overwrite, ex);
  Tensor split = poisoned({1}, DType::f32, dev), split_comp = poisoned({1}, DType::f32, dev);
  ex.compensation = &split_comp;
  std::int64_t begin = 0;
  for (std::int64_t end : {std::int64_t{1}, std::int64_t{7777}, std::int64_t{7778}, s[0]}) {
    l1_loss_forward(pred.rows(begin, end), target.rows(begin, end), split,
                    begin == 0 ? GradientMode::Overwrite : GradientMode::Accumulate, ex);
    begin = end;
  }
  expect_same_bits(split, whole, "split vs whole");
  expect_same_bits(split_comp, whole_comp, "split vs whole compensation");
  Tensor plain = poisoned({1}, DType::f32, dev);
  l1_loss_forward(pred, target, plain, GradientMode::Overwrite);
  const double want = l1_sum_reference(pred, target);
  const double got = static_cast<double>(whole.to_vector()[0]) + whole_comp.to_vector()[0];
  const double ulp = std::ldexp(1.0, std::ilogb(want) - 23);
  EXPECT_LE(std::fabs(got - want), 2 * ulp) << "compensated " << got << ", exact " << want;
  EXPECT_LT(std::fabs(got - want), std::fabs(plain.to_vector()[0] - want))
      << "the plain chain was no worse";
  return got;
}

// The forward's tail (the reduced value; a window count) in one call equals, bit for bit, the
// separate calls it stands for: l1_loss_forward, then scale_scalar of a copy, then
// window_count_micro_batch. Returns the reduced value.
inline float check_l1_forward_tail(Device dev, const Shape& s, DType dt, double factor,
                                   bool dynamic, std::uint64_t seed) {
  SCOPED_TRACE("l1_loss_forward tail " + case_name(s, dt) + " factor " + std::to_string(factor));
  const Tensor pred = random_tensor(s, seed, dt, dev);
  const Tensor target = random_tensor(s, seed + 1, dt, dev);
  LossScaleRule rule;
  rule.dynamic = dynamic;
  struct Window {
    Storage counts;
    Tensor loss_scale, inv_loss_scale, sum, reduced;
  };
  auto make = [&] {
    Window w{make_window_counts(dev), scalar(1024.0f, dev), scalar(1.0f / 1024.0f, dev),
             scalar(0.75f, dev), poisoned({1}, DType::f32, dev)};
    // A count already there: the tail adds to it.
    window_count_micro_batch(w.counts, nullptr, 3, 7, w.loss_scale, w.inv_loss_scale, rule);
    return w;
  };
  Window fused = make(), separate = make();
  const auto elements = static_cast<std::uint64_t>(5 * s.numel());
  const WindowCountArgs count{&fused.counts,         5,   elements, &fused.loss_scale,
                              &fused.inv_loss_scale, rule};
  L1ForwardExtras tail;
  tail.reduced = &fused.reduced;
  tail.reduced_factor = factor;
  tail.count = &count;
  l1_loss_forward(pred, target, fused.sum, GradientMode::Accumulate, tail);

  l1_loss_forward(pred, target, separate.sum, GradientMode::Accumulate);
  separate.reduced = separate.sum.clone();
  scale_scalar(separate.reduced, factor);
  window_count_micro_batch(separate.counts, nullptr, 5, elements, separate.loss_scale,
                           separate.inv_loss_scale, rule);

  expect_same_bits(fused.sum, separate.sum, "loss sum");
  expect_same_bits(fused.reduced, separate.reduced, "reduced value");
  expect_same_bits(fused.loss_scale, separate.loss_scale, "loss scale");
  expect_same_bits(fused.inv_loss_scale, separate.inv_loss_scale, "inverse loss scale");
  const WindowCounts a = read_window_counts(fused.counts), b = read_window_counts(separate.counts);
  EXPECT_EQ(a.samples, 8u);
  EXPECT_EQ(a.elements, 7u + elements);
  EXPECT_EQ(a.micro_batches, 2u);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0) << "the counts differ";
  const double want = (0.75 + l1_sum_reference(pred, target)) * factor;
  const float got = fused.reduced.to_vector()[0];
  EXPECT_LE(std::fabs(got - want), 1e-5 * std::fabs(want) + 1e-30) << got << " vs " << want;
  return got;
}

inline Tensor check_l1_backward(Device dev, const Shape& s, DType dt, GradientMode mode,
                                bool with_scale, std::uint64_t seed) {
  SCOPED_TRACE("l1_loss_backward " + case_name(s, dt) + " mode " +
               std::to_string(static_cast<int>(mode)) + (with_scale ? " scaled" : ""));
  const Tensor pred = random_tensor(s, seed, dt, dev);
  std::vector<float> tv = random_values(s.numel(), seed + 1);
  const std::vector<float> pv = pred.to_vector();
  for (std::size_t i = 0; i < tv.size(); i += 7)
    tv[i] = pv[i];  // some exact ties: gradient 0
  const Tensor target = Tensor::from_vector(tv, s, dt, dev);
  const float factor = 1.0f / 37.0f;
  const float scale_value = 1024.5f;
  const Tensor scale = scalar(scale_value, dev);
  Tensor dpred = mode == GradientMode::Overwrite ? poisoned(s, dt, dev)
                                                 : random_tensor(s, seed + 2, dt, dev, -0.1f, 0.1f);
  const std::vector<float> before = dpred.to_vector();
  l1_loss_backward(pred, target, factor, with_scale ? &scale : nullptr, dpred, mode);
  // The coefficient is the f32 product factor * scale; sign * coefficient is exact.
  const double coef = with_scale ? f32(static_cast<double>(factor) * scale_value) : factor;
  const std::vector<float> t = target.to_vector();
  std::vector<double> want(pv.size());
  for (std::size_t i = 0; i < pv.size(); ++i) {
    const double g = pv[i] > t[i] ? coef : (pv[i] < t[i] ? -coef : 0.0);
    switch (mode) {
      case GradientMode::Ignore:
        want[i] = before[i];
        break;
      case GradientMode::Overwrite:
        want[i] = round_to(g, dt);
        break;
      case GradientMode::Accumulate:
        // Computed in f32, then rounded to the dtype.
        want[i] = round_to(f32(static_cast<double>(before[i]) + g), dt);
        break;
    }
  }
  expect_values(dpred.to_vector(), want, "dpred");
  return dpred.to(Device::CPU);
}

inline void check_l1_errors(Device dev) {
  const Tensor pred = random_tensor({4, 3}, 1, DType::f32, dev);
  const Tensor target = random_tensor({4, 3}, 2, DType::f32, dev);
  const Tensor target_shape = random_tensor({3, 4}, 2, DType::f32, dev);
  const Tensor target_f16 = random_tensor({4, 3}, 2, DType::f16, dev);
  Tensor loss = Tensor::zeros({1}, DType::f32, dev);
  Tensor loss2 = Tensor::zeros({2}, DType::f32, dev);
  Tensor loss_f16 = Tensor::zeros({1}, DType::f16, dev);
  GA_EXPECT_ERROR(l1_loss_forward(pred, target_shape, loss, GradientMode::Overwrite), "shape");
  GA_EXPECT_ERROR(l1_loss_forward(pred, target_f16, loss, GradientMode::Overwrite), "dtype");
  GA_EXPECT_ERROR(l1_loss_forward(pred, target, loss2, GradientMode::Overwrite), "f32 [1]");
  GA_EXPECT_ERROR(l1_loss_forward(pred, target, loss_f16, GradientMode::Accumulate), "f32 [1]");
  Tensor dpred = Tensor::zeros({4, 3}, DType::f32, dev);
  Tensor dpred_f16 = Tensor::zeros({4, 3}, DType::f16, dev);
  Tensor dpred_shape = Tensor::zeros({12}, DType::f32, dev);
  GA_EXPECT_ERROR(l1_loss_backward(pred, target, 1.0f, nullptr, dpred_f16, GradientMode::Overwrite),
                  "dtype");
  GA_EXPECT_ERROR(
      l1_loss_backward(pred, target, 1.0f, nullptr, dpred_shape, GradientMode::Overwrite), "shape");
  GA_EXPECT_ERROR(l1_loss_backward(pred, target, 1.0f, &loss2, dpred, GradientMode::Overwrite),
                  "scale");
  // The tail: a reduced value that is no f32 scalar, a count on another device or incomplete.
  L1ForwardExtras bad_reduced;
  bad_reduced.reduced = &loss2;
  GA_EXPECT_ERROR(l1_loss_forward(pred, target, loss, GradientMode::Overwrite, bad_reduced),
                  "reduced");
  const Device other = dev == Device::CPU && cuda_available() ? Device::CUDA : Device::CPU;
  Storage counts = make_window_counts(other);
  Tensor scale = Tensor::full({1}, 1.0f, DType::f32, other);
  Tensor inv = Tensor::full({1}, 1.0f, DType::f32, other);
  const WindowCountArgs elsewhere{&counts, 1, 3, &scale, &inv, LossScaleRule{}};
  L1ForwardExtras bad_count;
  bad_count.count = &elsewhere;
  if (other != dev) {
    GA_EXPECT_ERROR(l1_loss_forward(pred, target, loss, GradientMode::Overwrite, bad_count),
                    "the loss");
  }
  const WindowCountArgs incomplete{&counts, 1, 3, nullptr, &inv, LossScaleRule{}};
  bad_count.count = &incomplete;
  GA_EXPECT_ERROR(l1_loss_forward(pred, target, loss, GradientMode::Overwrite, bad_count),
                  "loss_scale");
  const float before = loss.to_vector()[0];
  EXPECT_EQ(before, 0.0f) << "a rejected call wrote the loss";
}

// ---- several tensors at once ----

// accumulate(targets) equals, bit for bit, one accumulate() per target: eleven targets (two
// launches of at most eight on CUDA), sizes from 0 to beyond one block's share, Kahan on some,
// one target without the scale, a misaligned view; then the whole call skipped by a raised flag;
// then an overflow raising nonfinite. With f16, the per-tensor fallback.
inline void check_accumulate_many(Device dev, DType g_dtype, std::uint64_t seed) {
  SCOPED_TRACE(std::string("accumulate(targets) g ") + dtype_name(g_dtype));
  const std::vector<std::int64_t> sizes = {1, 0, 7, 4096, 33, 100003, 8, 9, 1, 2500, 64};
  struct Set {
    std::vector<Tensor> acc, comp, g;
  };
  auto make = [&] {
    Set st;
    std::uint64_t k = seed;
    for (std::int64_t n : sizes) {
      st.acc.push_back(random_tensor({n}, ++k, DType::f32, dev));
      st.comp.push_back(random_tensor({n}, ++k, DType::f32, dev, -1e-7f, 1e-7f));
      st.g.push_back(random_tensor({n}, ++k, g_dtype, dev, -4.0f, 4.0f));
    }
    return st;
  };
  Set many = make(), one = make();
  const Tensor scale = scalar(0.375f, dev);
  NonFiniteFlag flag_many(dev), flag_one(dev);
  auto targets_of = [&](Set& st) {
    std::vector<AccumulateTarget> t;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      AccumulateTarget at{&st.acc[i], &st.g[i], i % 3 == 1 ? &st.comp[i] : nullptr};
      at.apply_scale = i != 4;
      t.push_back(at);
    }
    return t;
  };
  AccumulateOptions o;
  o.scale = &scale;
  o.nonfinite = &flag_many;
  accumulate(targets_of(many), o);
  for (const AccumulateTarget& t : targets_of(one)) {
    AccumulateOptions single = o;
    single.nonfinite = &flag_one;
    single.compensation = t.compensation;
    if (!t.apply_scale) single.scale = nullptr;
    accumulate(*t.acc, *t.g, single);
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    expect_same_bits(many.acc[i], one.acc[i], "acc " + std::to_string(i));
    expect_same_bits(many.comp[i], one.comp[i], "comp " + std::to_string(i));
  }
  EXPECT_FALSE(flag_many.raised());
  EXPECT_FALSE(flag_one.raised());

  // Skipped as a whole: nothing changes.
  NonFiniteFlag skip(dev);
  check_finite(scalar(std::numeric_limits<float>::infinity(), dev), skip);
  ASSERT_TRUE(skip.raised());
  std::vector<Tensor> before;
  for (const Tensor& t : many.acc)
    before.push_back(t.clone());
  AccumulateOptions skipped = o;
  skipped.skip_if = &skip;
  accumulate(targets_of(many), skipped);
  for (std::size_t i = 0; i < sizes.size(); ++i)
    expect_same_bits(many.acc[i], before[i], "skipped acc " + std::to_string(i));

  // An overflow in the last target only raises the flag.
  Tensor big = scalar(3e38f, dev);
  const Tensor more = Tensor::full({1}, 6e4f, g_dtype, dev);
  std::vector<AccumulateTarget> t = targets_of(many);
  t.push_back({&big, &more});
  AccumulateOptions unscaled;
  unscaled.nonfinite = &flag_many;
  const Tensor huge = scalar(1e36f, dev);
  unscaled.scale = &huge;
  accumulate(t, unscaled);
  EXPECT_TRUE(flag_many.raised());
}

// check_finite(tensors) raises the flag exactly when one-tensor calls would.
inline void check_finite_many(Device dev, std::uint64_t seed) {
  const std::vector<std::int64_t> sizes = {5, 0, 4096, 100003, 3, 9, 17, 1, 2, 64};
  for (std::size_t bad = 0; bad <= sizes.size(); ++bad) {
    SCOPED_TRACE("non-finite value in tensor " + std::to_string(bad));
    std::vector<Tensor> ts;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      std::vector<float> v = random_values(sizes[i], seed + i);
      if (i == bad && !v.empty()) v[v.size() / 2] = std::numeric_limits<float>::quiet_NaN();
      ts.push_back(Tensor::from_vector(v, {sizes[i]}, DType::f32, dev));
    }
    std::vector<const Tensor*> ptrs;
    for (const Tensor& t : ts)
      ptrs.push_back(&t);
    NonFiniteFlag flag(dev);
    check_finite(ptrs, flag);
    EXPECT_EQ(flag.raised(), bad < sizes.size() && sizes[bad] > 0);
  }
}

inline void check_many_errors(Device dev) {
  Tensor acc = random_tensor({4}, 1, DType::f32, dev);
  const Tensor g = random_tensor({4}, 2, DType::f32, dev);
  const Tensor g_wrong = random_tensor({5}, 3, DType::f32, dev);
  Tensor comp = Tensor::zeros({4}, DType::f32, dev);
  AccumulateOptions with_comp;
  with_comp.compensation = &comp;
  GA_EXPECT_ERROR(accumulate({{&acc, &g}}, with_comp), "own compensation");
  GA_EXPECT_ERROR(accumulate({{&acc, nullptr}}, AccumulateOptions{}), "without acc or g");
  // A bad second target: the first is not touched.
  const Tensor before = acc.clone();
  Tensor acc2 = random_tensor({4}, 4, DType::f32, dev);
  GA_EXPECT_ERROR(accumulate({{&acc, &g}, {&acc2, &g_wrong}}, AccumulateOptions{}), "shape");
  expect_same_bits(acc, before, "acc after a rejected call");
  NonFiniteFlag flag(dev);
  GA_EXPECT_ERROR(check_finite(std::vector<const Tensor*>{&g, nullptr}, flag), "null");
}

// window_end_step's record holds, after the update, what the separate reads give: the counts, the
// loss scale (here backed off by the overflow), the loss sum and its compensation, the skip flag.
inline void check_step_record(Device dev) {
  SCOPED_TRACE(std::string("step record on ") + device_name(dev));
  Storage counts = make_window_counts(dev);
  Tensor scale = scalar(4096.0f, dev), inv = scalar(1.0f / 4096.0f, dev);
  LossScaleRule rule;
  rule.dynamic = true;
  window_count_micro_batch(counts, nullptr, 3, 12, scale, inv, rule);
  window_count_micro_batch(counts, nullptr, 5, 20, scale, inv, rule);
  const Tensor loss_sum = scalar(12.5f, dev), comp = scalar(-3e-7f, dev);
  NonFiniteFlag skip(dev);
  check_finite(scalar(std::numeric_limits<float>::quiet_NaN(), dev), skip);
  Storage record = make_window_step_record(dev);
  const WindowRecordArgs args{&record, &loss_sum, &comp, &skip};
  window_end_step(counts, &skip, scale, inv, rule, &args);
  const WindowStepRecord r = read_window_step_record(record);
  const WindowCounts c = read_window_counts(counts);
  EXPECT_EQ(std::memcmp(&r.counts, &c, sizeof c), 0);
  EXPECT_EQ(r.counts.samples, 8u);
  EXPECT_EQ(r.counts.elements, 32u);
  EXPECT_EQ(r.loss_scale, 2048.0f) << "the overflow backs the scale off before the record";
  EXPECT_EQ(r.loss_scale, scale.to_vector()[0]);
  EXPECT_EQ(r.loss_sum, 12.5f);
  EXPECT_EQ(r.loss_sum_comp, -3e-7f);
  EXPECT_NE(r.skipped, 0u);
  const WindowRecordArgs incomplete{&record, &loss_sum, nullptr, &skip};
  GA_EXPECT_ERROR(window_end_step(counts, nullptr, scale, inv, rule, &incomplete), "step record");
}

// ---- accumulation -------------------------------------------------------------------------

struct AccCase {
  DType acc;
  DType g;
  bool kahan;
  bool scaled;
};

inline std::string acc_case_name(const AccCase& c) {
  return std::string("acc ") + dtype_name(c.acc) + " += g " + dtype_name(c.g) +
         (c.kahan ? " kahan" : "") + (c.scaled ? " scaled" : "");
}

inline std::vector<AccCase> acc_cases() {
  std::vector<AccCase> out;
  for (bool scaled : {false, true}) {
    out.push_back({DType::f32, DType::f32, false, scaled});
    out.push_back({DType::f32, DType::f16, false, scaled});
    out.push_back({DType::f16, DType::f16, false, scaled});
    out.push_back({DType::f32, DType::f32, true, scaled});
    out.push_back({DType::f32, DType::f16, true, scaled});
  }
  return out;
}

struct AccResult {
  Tensor acc;
  Tensor comp;  // undefined unless Kahan
};

// One accumulate call against a float64 reference rounded at the documented points.
inline AccResult check_accumulate(Device dev, const Shape& s, const AccCase& c,
                                  std::uint64_t seed) {
  SCOPED_TRACE("accumulate " + s.str() + " " + acc_case_name(c));
  const float scale_value = 0.3f;  // not a power of two: the product really rounds
  const Tensor scale = scalar(scale_value, dev);
  Tensor acc = random_tensor(s, seed, c.acc, dev, -8.0f, 8.0f);
  const Tensor g = random_tensor(s, seed + 1, c.g, dev, -2.0f, 2.0f);
  Tensor comp;
  if (c.kahan) comp = random_tensor(s, seed + 2, DType::f32, dev, -1e-6f, 1e-6f);
  const std::vector<float> a0 = acc.to_vector();
  const std::vector<float> gv = g.to_vector();
  const std::vector<float> c0 = c.kahan ? comp.to_vector() : std::vector<float>();
  NonFiniteFlag flag(dev);
  AccumulateOptions o;
  o.scale = c.scaled ? &scale : nullptr;
  o.compensation = c.kahan ? &comp : nullptr;
  o.nonfinite = &flag;
  accumulate(acc, g, o);
  EXPECT_FALSE(flag.raised());
  std::vector<double> want(a0.size());
  std::vector<double> want_comp(c0.size());
  for (std::size_t i = 0; i < a0.size(); ++i) {
    double x = c.scaled ? f32(static_cast<double>(gv[i]) * scale_value) : gv[i];
    if (c.kahan) {
      const double y = f32(x + c0[i]);
      const double t = f32(a0[i] + y);
      want_comp[i] = f32(y - f32(t - a0[i]));
      want[i] = t;
    } else if (c.acc == DType::f16) {
      if (c.scaled) x = round_to(x, DType::f16);
      want[i] = round_to(static_cast<double>(a0[i]) + x, DType::f16);
    } else {
      want[i] = f32(static_cast<double>(a0[i]) + x);
    }
  }
  expect_values(acc.to_vector(), want, "acc");
  if (c.kahan) {
    expect_values(comp.to_vector(), want_comp, "comp");
  }
  AccResult r{acc.to(Device::CPU), Tensor()};
  if (c.kahan) r.comp = comp.to(Device::CPU);
  return r;
}

// Stagnation: adding 1e-8 to 1.0 a thousand times leaves a naive f32 sum at 1.0 (each addend is
// under half an ulp of 1); Kahan keeps the lost part in comp, so acc + comp is right.
inline void check_kahan_beats_naive(Device dev) {
  const Shape s{37};
  Tensor naive = Tensor::full(s, 1.0f, DType::f32, dev);
  Tensor kahan = Tensor::full(s, 1.0f, DType::f32, dev);
  Tensor comp = Tensor::zeros(s, DType::f32, dev);
  const Tensor g = Tensor::full(s, 1e-8f, DType::f32, dev);
  AccumulateOptions ko;
  ko.compensation = &comp;
  const int steps = 1000;
  for (int k = 0; k < steps; ++k) {
    accumulate(naive, g, {});
    accumulate(kahan, g, ko);
  }
  const double exact = 1.0 + steps * static_cast<double>(1e-8f);
  const std::vector<float> nv = naive.to_vector();
  const std::vector<float> kv = kahan.to_vector();
  const std::vector<float> cv = comp.to_vector();
  for (std::size_t i = 0; i < nv.size(); ++i) {
    EXPECT_EQ(nv[i], 1.0f) << "the naive sum was expected to stagnate";
    const double est = static_cast<double>(kv[i]) + cv[i];
    EXPECT_LE(std::fabs(est - exact), 1e-12) << "Kahan acc " << kv[i] << " comp " << cv[i];
    // acc itself is the sum rounded to f32 (within one ulp).
    EXPECT_LE(std::fabs(static_cast<double>(kv[i]) - exact), std::ldexp(1.0, -23));
  }
}

// Non-finite results raise the flag (sticky until clear()); a raised skip_if makes the call a
// no-op, also for the flag.
inline void check_accumulate_flags(Device dev, const AccCase& c, std::int64_t n) {
  SCOPED_TRACE("flags " + acc_case_name(c) + " n=" + std::to_string(n));
  const Shape s{n};
  // acc + g overflows: f32 3e38 + 3e38; f16 60000 + 60000 (fp16 arithmetic); an f16 g cannot
  // overflow an f32 acc, so there g is +inf.
  const float big = c.acc == DType::f16 ? 60000.0f : 3e38f;
  const float add = c.g == DType::f32 ? 3e38f : (c.acc == DType::f16 ? 60000.0f : INFINITY);
  const Tensor scale = scalar(1.0f, dev);
  NonFiniteFlag flag(dev);
  NonFiniteFlag no_skip(dev);
  NonFiniteFlag skip(dev);
  check_finite(Tensor::full({1}, INFINITY, DType::f32, dev), skip);
  ASSERT_TRUE(skip.raised());
  ASSERT_FALSE(no_skip.raised());
  auto options = [&](Tensor* comp, const NonFiniteFlag* skip_if) {
    AccumulateOptions o;
    o.compensation = c.kahan ? comp : nullptr;
    o.scale = c.scaled ? &scale : nullptr;
    o.nonfinite = &flag;
    o.skip_if = skip_if;
    return o;
  };
  {
    Tensor a = Tensor::full(s, 1.0f, c.acc, dev);
    Tensor comp = Tensor::zeros(s, DType::f32, dev);
    accumulate(a, random_tensor(s, 5, c.g, dev), options(&comp, &no_skip));
    EXPECT_FALSE(flag.raised()) << "finite results must not raise the flag";
  }
  // One overflowing element: in the scalar tail, in the middle, at the start.
  for (std::int64_t where : {n - 1, n / 2, std::int64_t{0}}) {
    SCOPED_TRACE("overflow at element " + std::to_string(where));
    Tensor a = Tensor::full(s, big, c.acc, dev);
    Tensor comp = Tensor::zeros(s, DType::f32, dev);
    std::vector<float> gv(static_cast<std::size_t>(n), 0.5f);
    gv[static_cast<std::size_t>(where)] = add;
    const Tensor g = Tensor::from_vector(gv, s, c.g, dev);
    flag.clear();
    // Skipped: nothing changes, the flag stays down.
    const std::vector<std::uint8_t> a0 = bytes_of(a);
    const std::vector<std::uint8_t> c0 = bytes_of(comp);
    accumulate(a, g, options(&comp, &skip));
    EXPECT_EQ(bytes_of(a), a0) << "a raised skip_if must leave acc unchanged";
    EXPECT_EQ(bytes_of(comp), c0) << "a raised skip_if must leave comp unchanged";
    EXPECT_FALSE(flag.raised()) << "a skipped call must not raise the flag";
    // Not skipped: the element overflows and the flag goes up.
    accumulate(a, g, options(&comp, &no_skip));
    EXPECT_TRUE(flag.raised());
    EXPECT_TRUE(std::isinf(a.to_vector()[static_cast<std::size_t>(where)]));
    // Sticky: a later all-finite call leaves it raised.
    Tensor fine = Tensor::full(s, 1.0f, c.acc, dev);
    Tensor fine_comp = Tensor::zeros(s, DType::f32, dev);
    accumulate(fine, Tensor::zeros(s, c.g, dev), options(&fine_comp, nullptr));
    EXPECT_TRUE(flag.raised()) << "the flag is sticky";
    flag.clear();
    EXPECT_FALSE(flag.raised());
  }
  // A NaN in g raises it too.
  std::vector<float> gv(static_cast<std::size_t>(n), 0.25f);
  gv.back() = std::numeric_limits<float>::quiet_NaN();
  Tensor a = Tensor::full(s, 1.0f, c.acc, dev);
  Tensor comp = Tensor::zeros(s, DType::f32, dev);
  accumulate(a, Tensor::from_vector(gv, s, c.g, dev), options(&comp, nullptr));
  EXPECT_TRUE(flag.raised());
}

inline void check_check_finite(Device dev) {
  for (DType dt : {DType::f32, DType::f16}) {
    for (std::int64_t n : {1, 3, 17, 1000, 4097}) {
      SCOPED_TRACE(std::string("check_finite ") + dtype_name(dt) + " n=" + std::to_string(n));
      NonFiniteFlag flag(dev);
      check_finite(random_tensor({n}, 3, dt, dev, -60000.0f, 60000.0f), flag);
      EXPECT_FALSE(flag.raised());
      for (float bad : {INFINITY, -INFINITY, std::numeric_limits<float>::quiet_NaN()}) {
        for (std::int64_t where : {std::int64_t{0}, n / 2, n - 1}) {
          std::vector<float> v = random_values(n, 4);
          v[static_cast<std::size_t>(where)] = bad;
          flag.clear();
          check_finite(Tensor::from_vector(v, {n}, dt, dev), flag);
          EXPECT_TRUE(flag.raised()) << bad << " at " << where;
        }
      }
    }
  }
  NonFiniteFlag flag(dev);
  check_finite(Tensor::zeros({0}, DType::f32, dev), flag);
  EXPECT_FALSE(flag.raised());
  // 70000 is finite in f32 but overflows to inf in f16.
  check_finite(Tensor::from_vector({1.0f, 70000.0f}, {2}, DType::f16, dev), flag);
  EXPECT_TRUE(flag.raised());
}

inline void check_accumulate_errors(Device dev) {
  Tensor acc = Tensor::zeros({4, 3}, DType::f32, dev);
  Tensor acc16 = Tensor::zeros({4, 3}, DType::f16, dev);
  const Tensor g = random_tensor({4, 3}, 1, DType::f32, dev);
  const Tensor g16 = random_tensor({4, 3}, 1, DType::f16, dev);
  const Tensor g_shape = random_tensor({12}, 1, DType::f32, dev);
  Tensor comp_shape = Tensor::zeros({3, 4}, DType::f32, dev);
  Tensor comp_f16 = Tensor::zeros({4, 3}, DType::f16, dev);
  Tensor comp = Tensor::zeros({4, 3}, DType::f32, dev);
  const Tensor scale2 = Tensor::zeros({2}, DType::f32, dev);
  const Tensor scale_f16 = Tensor::zeros({1}, DType::f16, dev);
  GA_EXPECT_ERROR(accumulate(acc, g_shape), "shape");
  GA_EXPECT_ERROR(accumulate(acc16, g), "expected g of dtype f16");
  GA_EXPECT_ERROR(accumulate(acc, Tensor()), "undefined");
  AccumulateOptions o;
  o.compensation = &comp_shape;
  GA_EXPECT_ERROR(accumulate(acc, g, o), "compensation of shape");
  o.compensation = &comp_f16;
  GA_EXPECT_ERROR(accumulate(acc, g, o), "compensation of dtype f32");
  o.compensation = &comp;
  GA_EXPECT_ERROR(accumulate(acc16, g16, o), "Kahan");
  GA_EXPECT_ERROR(accumulate(comp, g, o), "alias");
  AccumulateOptions so;
  so.scale = &scale2;
  GA_EXPECT_ERROR(accumulate(acc, g, so), "f32 [1]");
  so.scale = &scale_f16;
  GA_EXPECT_ERROR(accumulate(acc, g, so), "f32 [1]");
  NonFiniteFlag flag(dev);
  GA_EXPECT_ERROR(check_finite(Tensor(), flag), "undefined");
}

// ---- SGD ----------------------------------------------------------------------------------

struct SgdCase {
  SgdHyper h;
  bool comp;
  bool scale;
  bool f16_copy;
};

inline std::vector<SgdCase> sgd_cases() {
  std::vector<SgdCase> out;
  auto hyper = [](float lr, float m, float d, float wd, bool nest) {
    SgdHyper h;
    h.lr = lr;
    h.momentum = m;
    h.dampening = d;
    h.weight_decay = wd;
    h.nesterov = nest;
    return h;
  };
  out.push_back({hyper(0.1f, 0.0f, 0.0f, 0.0f, false), false, false, false});
  out.push_back({hyper(0.05f, 0.0f, 0.0f, 1e-2f, false), false, true, true});
  out.push_back({hyper(0.01f, 0.9f, 0.0f, 0.0f, false), false, true, false});
  out.push_back({hyper(0.01f, 0.9f, 0.1f, 0.0f, false), true, true, true});
  out.push_back({hyper(0.01f, 0.9f, 0.0f, 0.0f, true), false, false, true});
  out.push_back({hyper(0.03f, 0.8f, 0.0f, 5e-4f, true), true, true, false});
  out.push_back({hyper(0.2f, 0.5f, 0.5f, 1e-3f, false), true, false, true});
  return out;
}

inline std::string sgd_case_name(const SgdCase& c) {
  std::ostringstream os;
  os << "lr " << c.h.lr << " momentum " << c.h.momentum << " dampening " << c.h.dampening << " wd "
     << c.h.weight_decay << (c.h.nesterov ? " nesterov" : "") << (c.comp ? " comp" : "")
     << (c.scale ? " scale" : "") << (c.f16_copy ? " f16" : "");
  return os.str();
}

// PyTorch's rule (torch.optim.SGD, single-tensor path) in float64 with the f32 rounding of each
// of PyTorch's float32 tensor operations.
inline void sgd_reference(std::vector<double>& p, const std::vector<float>& grad,
                          const std::vector<float>* comp, const float* scale,
                          std::vector<double>& buf, bool first_step, const SgdHyper& h) {
  const double damp_alpha = f32(1.0 - static_cast<double>(h.dampening));
  for (std::size_t i = 0; i < p.size(); ++i) {
    double g = grad[i];
    if (comp != nullptr) g = f32(g + (*comp)[i]);  // best estimate of the sum
    if (scale != nullptr) g = f32(g * *scale);     // unscaling / normalisation
    if (h.weight_decay != 0.0f) g = f32(g + f32(h.weight_decay * p[i]));  // grad.add(p, alpha=wd)
    if (h.momentum != 0.0f) {
      if (first_step) {
        buf[i] = g;  // buf = clone(grad)
      } else {
        buf[i] = f32(f32(buf[i] * h.momentum) + f32(damp_alpha * g));  // mul_ then add_(alpha)
      }
      g = h.nesterov ? f32(g + f32(h.momentum * buf[i])) : buf[i];
    }
    p[i] = f32(p[i] + f32(-static_cast<double>(h.lr) * g));  // p.add_(g, alpha=-lr)
  }
}

struct SgdResult {
  Tensor param;
  Tensor buf;
  Tensor f16;
};

// Three steps (the first one with first_step) against the reference, exactly.
inline SgdResult check_sgd(Device dev, const Shape& s, const SgdCase& c, std::uint64_t seed) {
  SCOPED_TRACE("sgd " + s.str() + " " + sgd_case_name(c));
  Tensor param = random_tensor(s, seed, DType::f32, dev, -1.0f, 1.0f);
  Tensor buf = poisoned(s, DType::f32, dev);  // first_step must not read it
  Tensor f16 = poisoned(s, DType::f16, dev);
  const float scale_value = 1.0f / 48.0f;
  const Tensor scale = scalar(scale_value, dev);
  std::vector<double> p = widen(param.to_vector());
  std::vector<double> b(p.size(), 0.0);
  for (int step = 0; step < 3; ++step) {
    const Tensor grad = random_tensor(s, seed + 10 + step, DType::f32, dev, -30.0f, 30.0f);
    const Tensor comp = random_tensor(s, seed + 20 + step, DType::f32, dev, -1e-6f, 1e-6f);
    SgdUpdateArgs a;
    a.param = &param;
    a.grad = &grad;
    a.grad_comp = c.comp ? &comp : nullptr;
    a.grad_scale = c.scale ? &scale : nullptr;
    a.momentum_buf = c.h.momentum != 0.0f ? &buf : nullptr;
    a.first_step = step == 0;
    a.param_f16 = c.f16_copy ? &f16 : nullptr;
    sgd_update(a, c.h);
    const std::vector<float> cv = comp.to_vector();
    sgd_reference(p, grad.to_vector(), c.comp ? &cv : nullptr, c.scale ? &scale_value : nullptr, b,
                  step == 0, c.h);
    expect_values(param.to_vector(), p, "param after step " + std::to_string(step));
    if (c.h.momentum != 0.0f) {
      expect_values(buf.to_vector(), b, "momentum_buf after step " + std::to_string(step));
    }
    if (c.f16_copy) {
      std::vector<double> h(p.size());
      for (std::size_t i = 0; i < p.size(); ++i)
        h[i] = round_to(p[i], DType::f16);
      expect_values(f16.to_vector(), h, "param_f16 after step " + std::to_string(step));
    }
  }
  return {param.to(Device::CPU), buf.to(Device::CPU), f16.to(Device::CPU)};
}

// A raised skip_if flag leaves parameter, momentum buffer and f16 copy untouched; cleared, the
// same call updates.
// sgd_update(updates) equals, bit for bit, one sgd_update per parameter: eleven parameters (two
// launches on CUDA) of sizes 0 to 100003, Kahan compensation and an f16 copy on some, two steps
// (the first initialises the momentum); a bad last update is rejected before any is applied.
inline void check_sgd_many(Device dev, std::uint64_t seed) {
  const std::vector<std::int64_t> sizes = {5, 0, 4096, 100003, 3, 9, 17, 1, 2, 64, 777};
  struct Param {
    Tensor p, g, comp, buf, f16;
  };
  auto make = [&] {
    std::vector<Param> ps;
    std::uint64_t k = seed;
    for (std::int64_t n : sizes) {
      ps.push_back({random_tensor({n}, ++k, DType::f32, dev),
                    random_tensor({n}, ++k, DType::f32, dev),
                    random_tensor({n}, ++k, DType::f32, dev, -1e-6f, 1e-6f),
                    Tensor::zeros({n}, DType::f32, dev), Tensor::zeros({n}, DType::f16, dev)});
    }
    return ps;
  };
  std::vector<Param> many = make(), one = make();
  const Tensor scale = scalar(0.125f, dev);
  SgdHyper h;
  h.lr = 0.05f;
  h.momentum = 0.9f;
  h.weight_decay = 1e-3f;
  h.nesterov = true;
  auto updates_of = [&](std::vector<Param>& ps, bool first) {
    std::vector<SgdUpdateArgs> u;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      SgdUpdateArgs a;
      a.param = &ps[i].p;
      a.grad = &ps[i].g;
      a.grad_comp = i % 3 == 0 ? &ps[i].comp : nullptr;
      a.grad_scale = &scale;
      a.momentum_buf = &ps[i].buf;
      a.param_f16 = i % 2 == 0 ? &ps[i].f16 : nullptr;
      a.first_step = first;
      u.push_back(a);
    }
    return u;
  };
  for (bool first : {true, false}) {
    sgd_update(updates_of(many, first), h);
    for (const SgdUpdateArgs& a : updates_of(one, first))
      sgd_update(a, h);
  }
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::string at = " of parameter " + std::to_string(i);
    expect_same_bits(many[i].p, one[i].p, "param" + at);
    expect_same_bits(many[i].buf, one[i].buf, "momentum" + at);
    expect_same_bits(many[i].f16, one[i].f16, "f16 copy" + at);
  }
  std::vector<SgdUpdateArgs> bad = updates_of(many, false);
  const Tensor wrong = Tensor::zeros({7}, DType::f32, dev);
  bad.back().grad = &wrong;
  const Tensor before = many.front().p.clone();
  GA_EXPECT_ERROR(sgd_update(bad, h), "shape");
  expect_same_bits(many.front().p, before, "the first parameter after a rejected call");
}

inline void check_sgd_skip_if(Device dev) {
  const Shape s{1000};
  Tensor p = random_tensor(s, 1, DType::f32, dev);
  Tensor buf = random_tensor(s, 2, DType::f32, dev);
  Tensor f16 = random_tensor(s, 3, DType::f16, dev);
  const Tensor g = random_tensor(s, 4, DType::f32, dev);
  NonFiniteFlag skip(dev);
  check_finite(Tensor::full({1}, NAN, DType::f32, dev), skip);
  ASSERT_TRUE(skip.raised());
  SgdUpdateArgs a;
  a.param = &p;
  a.grad = &g;
  a.momentum_buf = &buf;
  a.param_f16 = &f16;
  a.skip_if = &skip;
  SgdHyper h;
  h.momentum = 0.9f;
  const auto p0 = bytes_of(p);
  const auto b0 = bytes_of(buf);
  const auto h0 = bytes_of(f16);
  sgd_update(a, h);
  EXPECT_EQ(bytes_of(p), p0);
  EXPECT_EQ(bytes_of(buf), b0);
  EXPECT_EQ(bytes_of(f16), h0);
  skip.clear();
  sgd_update(a, h);
  EXPECT_NE(bytes_of(p), p0);
}

}  // namespace gradaccum::test::ew
