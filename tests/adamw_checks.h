// Checks of the AdamW update (kernels/adamw.h) and optimizer (optim/adamw.h) shared by the CPU
// tests (tests/cpu/adamw_test.cpp) and the GPU tests (tests/gpu/adamw_test.cpp): each runs on one
// device and returns its results on the host, so that the GPU tests can also compare CUDA with
// the CPU bit for bit.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/npy.h"
#include "core/state_dict.h"
#include "elementwise_checks.h"
#include "kernels/adamw.h"
#include "mlp_helpers.h"
#include "optim/adamw.h"

namespace gradaccum::test::adamw {

using ew::bytes_of;
using ew::expect_same_bits;
using ew::expect_values;
using ew::f32;
using ew::widen;

// ---- the update kernel ----------------------------------------------------------------------

struct AdamwCase {
  AdamwHyper h;
  bool comp;
  bool scale;
  bool f16_copy;
};

// The update's arguments that every check passes; the rest are set where needed.
inline AdamwUpdateArgs args_of(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v) {
  AdamwUpdateArgs a;
  a.param = &param;
  a.grad = &grad;
  a.exp_avg = &m;
  a.exp_avg_sq = &v;
  return a;
}

inline std::vector<AdamwCase> adamw_cases() {
  // AdamwHyper{lr, beta1, beta2, eps, weight_decay, amsgrad, step}, comp, scale, f16 copy
  return {
      {AdamwHyper{1e-3, 0.9, 0.999, 1e-8, 1e-2, false, 1}, false, false, false},  // defaults
      {AdamwHyper{1e-3, 0.9, 0.999, 1e-8, 1e-2, true, 1}, false, true, true},
      {AdamwHyper{1e-2, 0.9, 0.999, 1e-8, 0.1, false, 1}, true, true, true},
      {AdamwHyper{3e-3, 0.5, 0.9, 1e-3, 1e-2, true, 7}, true, false, false},  // mid-training
      {AdamwHyper{0.1, 0.9, 0.999, 1e-8, 0.0, true, 2}, true, true, true},
      {AdamwHyper{0.05, 0.0, 0.0, 1e-6, 1e-2, false, 1}, false, true, false},  // no memory
  };
}

inline std::string adamw_case_name(const AdamwCase& c) {
  std::ostringstream os;
  os << "lr " << c.h.lr << " betas " << c.h.beta1 << "," << c.h.beta2 << " eps " << c.h.eps
     << " wd " << c.h.weight_decay << (c.h.amsgrad ? " amsgrad" : "") << " from step " << c.h.step
     << (c.comp ? " comp" : "") << (c.scale ? " scale" : "") << (c.f16_copy ? " f16" : "");
  return os.str();
}

// The state of one parameter, on the host, in float64 (each value an f32 one for the rule).
struct State {
  std::vector<double> p, m, v, vmax;
};

// PyTorch's rule (torch.optim.AdamW, single-tensor path) in float64 with the f32 rounding of
// each of PyTorch's float32 tensor operations, and its scalars computed in double as Python does.
inline void adamw_reference(State& s, const std::vector<float>& grad,
                            const std::vector<float>* comp, const float* scale,
                            const AdamwHyper& h) {
  const double t = static_cast<double>(h.step);
  const double decay = f32(1.0 - h.lr * h.weight_decay);
  const double beta1 = f32(h.beta1), omb1 = f32(1.0 - h.beta1);
  const double beta2 = f32(h.beta2), omb2 = f32(1.0 - h.beta2);
  const double neg_step_size = f32(-(h.lr / (1.0 - std::pow(h.beta1, t))));
  const double bc2_sqrt = f32(std::sqrt(1.0 - std::pow(h.beta2, t)));
  const double eps = f32(h.eps);
  for (std::size_t i = 0; i < s.p.size(); ++i) {
    double g = grad[i];
    if (comp != nullptr) g = f32(g + (*comp)[i]);                // best estimate of the sum
    if (scale != nullptr) g = f32(g * *scale);                   // unscaling / normalisation
    s.p[i] = f32(s.p[i] * decay);                                // param.mul_(1 - lr * wd)
    s.m[i] = f32(f32(s.m[i] * beta1) + f32(omb1 * g));           // mul_(b1).add_(g, alpha)
    s.v[i] = f32(f32(s.v[i] * beta2) + f32(f32(omb2 * g) * g));  // mul_(b2).addcmul_(g, g)
    double sq = s.v[i];
    if (h.amsgrad) {
      s.vmax[i] = std::isnan(s.vmax[i]) || s.vmax[i] > s.v[i] ? s.vmax[i] : s.v[i];
      sq = s.vmax[i];
    }
    const double d = f32(f32(f32(std::sqrt(sq)) / bc2_sqrt) + eps);  // (sqrt / bc2).add_(eps)
    s.p[i] = f32(s.p[i] + f32(f32(neg_step_size * s.m[i]) / d));     // addcdiv_(m, d, -step)
  }
}

// The same step in float64 without any rounding (scalars included), and for each element a
// bound on how far an f32 evaluation may be from it: a few units of f32 rounding (2^-24) of the
// magnitudes of the terms each result is made of, carried through the square root and the
// quotient. An update must land within the bound.
struct Float64Step {
  State want, bound;
};

inline Float64Step adamw_float64(const State& s, const std::vector<float>& grad,
                                 const std::vector<float>* comp, const float* scale,
                                 const AdamwHyper& h) {
  constexpr double k = 8.0 * 0x1.0p-24;  // a few roundings' worth, relative
  const double t = static_cast<double>(h.step);
  const double b1 = h.beta1, b2 = h.beta2;
  const double step_size = h.lr / (1.0 - std::pow(b1, t));
  const double bc2 = std::sqrt(1.0 - std::pow(b2, t));
  const double decay = 1.0 - h.lr * h.weight_decay;
  Float64Step r{s, s};
  for (std::size_t i = 0; i < s.p.size(); ++i) {
    const double c = comp != nullptr ? (*comp)[i] : 0.0;
    const double sc = scale != nullptr ? *scale : 1.0;
    const double g = (grad[i] + c) * sc;
    const double gmag = (std::fabs(grad[i]) + std::fabs(c)) * std::fabs(sc);
    const double m = s.m[i] * b1 + (1.0 - b1) * g;
    const double em = k * (std::fabs(s.m[i]) * b1 + (1.0 - b1) * gmag);
    const double v = s.v[i] * b2 + (1.0 - b2) * g * g;
    const double ev = k * (s.v[i] * b2 + (1.0 - b2) * gmag * gmag);
    const double sq = h.amsgrad ? std::max(s.vmax[i], v) : v;
    const double d = std::sqrt(sq) / bc2 + h.eps;
    const double ed = (ev / (2.0 * std::sqrt(sq)) + k * std::sqrt(sq)) / bc2 + k * d;
    const double u = step_size * m / d;
    const double eu = step_size * (em / d + std::fabs(m) * ed / (d * d)) + k * std::fabs(u);
    r.want.p[i] = s.p[i] * decay - u;
    r.bound.p[i] = k * std::fabs(s.p[i]) + eu + k * std::fabs(r.want.p[i]);
    r.want.m[i] = m;
    r.bound.m[i] = em;
    r.want.v[i] = v;
    r.bound.v[i] = ev;
    if (h.amsgrad) {
      r.want.vmax[i] = sq;
      r.bound.vmax[i] = ev;
    }
  }
  return r;
}

// |got - want| <= bound everywhere; reports the number of elements outside and the first.
inline void expect_within(const std::vector<float>& got, const std::vector<double>& want,
                          const std::vector<double>& bound, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= bound[i]) && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": first element outside the f32 bound at " << first << ": got "
                     << got[first] << ", float64 " << want[first] << ", bound " << bound[first];
}

struct AdamwResult {
  Tensor param, m, v, vmax, f16;
};

// Three steps (c.h.step and the two after) from a random state (moments included: the kernel
// takes any state), each against the rounded reference (exactly) and against float64 (within
// f32 bounds). Without amsgrad max_exp_avg_sq is passed poisoned and must stay so.
inline AdamwResult check_adamw(Device dev, const Shape& s, const AdamwCase& c, std::uint64_t seed) {
  SCOPED_TRACE("adamw " + s.str() + " " + adamw_case_name(c));
  Tensor param = random_tensor(s, seed, DType::f32, dev, -1.0f, 1.0f);
  Tensor m = random_tensor(s, seed + 1, DType::f32, dev, -1.0f, 1.0f);
  Tensor v = random_tensor(s, seed + 2, DType::f32, dev, 1e-3f, 2.0f);
  Tensor vmax = c.h.amsgrad ? random_tensor(s, seed + 3, DType::f32, dev, 1e-3f, 2.0f)
                            : poisoned(s, DType::f32, dev);
  Tensor f16 = poisoned(s, DType::f16, dev);
  const auto vmax_bytes = bytes_of(vmax);
  const float scale_value = 1.0f / 48.0f;
  const Tensor scale = ew::scalar(scale_value, dev);
  State st{widen(param.to_vector()), widen(m.to_vector()), widen(v.to_vector()),
           widen(vmax.to_vector())};
  for (int k = 0; k < 3; ++k) {
    const std::string after = " after step " + std::to_string(c.h.step + k);
    const Tensor grad = random_tensor(s, seed + 10 + k, DType::f32, dev, -30.0f, 30.0f);
    const Tensor comp = random_tensor(s, seed + 20 + k, DType::f32, dev, -1e-6f, 1e-6f);
    AdamwHyper h = c.h;
    h.step = c.h.step + k;
    AdamwUpdateArgs a = args_of(param, grad, m, v);
    a.grad_comp = c.comp ? &comp : nullptr;
    a.grad_scale = c.scale ? &scale : nullptr;
    a.max_exp_avg_sq = &vmax;
    a.param_f16 = c.f16_copy ? &f16 : nullptr;
    adamw_update(a, h);
    const std::vector<float> gv = grad.to_vector(), cv = comp.to_vector();
    const std::vector<float>* comp_ref = c.comp ? &cv : nullptr;
    const float* scale_ref = c.scale ? &scale_value : nullptr;
    const Float64Step exact = adamw_float64(st, gv, comp_ref, scale_ref, h);
    adamw_reference(st, gv, comp_ref, scale_ref, h);
    expect_values(param.to_vector(), st.p, "param" + after);
    expect_values(m.to_vector(), st.m, "exp_avg" + after);
    expect_values(v.to_vector(), st.v, "exp_avg_sq" + after);
    expect_within(param.to_vector(), exact.want.p, exact.bound.p, "param vs float64" + after);
    expect_within(m.to_vector(), exact.want.m, exact.bound.m, "exp_avg vs float64" + after);
    expect_within(v.to_vector(), exact.want.v, exact.bound.v, "exp_avg_sq vs float64" + after);
    if (c.h.amsgrad) {
      expect_values(vmax.to_vector(), st.vmax, "max_exp_avg_sq" + after);
      expect_within(vmax.to_vector(), exact.want.vmax, exact.bound.vmax,
                    "max_exp_avg_sq vs float64" + after);
    } else {
      EXPECT_EQ(bytes_of(vmax), vmax_bytes) << "max_exp_avg_sq written without amsgrad" << after;
    }
    if (c.f16_copy) {
      std::vector<double> half(st.p.size());
      for (std::size_t i = 0; i < st.p.size(); ++i)
        half[i] = ew::round_to(st.p[i], DType::f16);
      expect_values(f16.to_vector(), half, "param_f16" + after);
    }
  }
  return {param.to(Device::CPU), m.to(Device::CPU), v.to(Device::CPU), vmax.to(Device::CPU),
          f16.to(Device::CPU)};
}

// adamw_update(updates) equals, bit for bit, one adamw_update per parameter: eleven parameters
// (two launches on CUDA) of sizes 0 to 100003, amsgrad, Kahan compensation and an f16 copy on
// some, two steps; a bad last update is rejected before any is applied.
inline void check_adamw_many(Device dev, std::uint64_t seed) {
  const std::vector<std::int64_t> sizes = {5, 0, 4096, 100003, 3, 9, 17, 1, 2, 64, 777};
  // A parameter, its gradient and compensation (random, from seed k on), zeroed state.
  struct Param {
    Param(std::int64_t n, std::uint64_t k, Device d)
        : p(random_tensor({n}, k, DType::f32, d)),
          g(random_tensor({n}, k + 1, DType::f32, d)),
          comp(random_tensor({n}, k + 2, DType::f32, d, -1e-6f, 1e-6f)),
          m(Tensor::zeros({n}, DType::f32, d)),
          v(Tensor::zeros({n}, DType::f32, d)),
          vmax(Tensor::zeros({n}, DType::f32, d)),
          f16(Tensor::zeros({n}, DType::f16, d)) {}
    Tensor p, g, comp, m, v, vmax, f16;
  };
  auto make = [&] {
    std::vector<Param> ps;
    for (std::size_t i = 0; i < sizes.size(); ++i)
      ps.emplace_back(sizes[i], seed + 3 * i, dev);
    return ps;
  };
  std::vector<Param> many = make(), one = make();
  const Tensor scale = ew::scalar(0.125f, dev);
  AdamwHyper h{0.01, 0.9, 0.99, 1e-8, 0.05, true, 1};
  auto updates_of = [&](std::vector<Param>& ps) {
    std::vector<AdamwUpdateArgs> u;
    for (std::size_t i = 0; i < ps.size(); ++i) {
      AdamwUpdateArgs a = args_of(ps[i].p, ps[i].g, ps[i].m, ps[i].v);
      a.grad_comp = i % 3 == 0 ? &ps[i].comp : nullptr;
      a.grad_scale = &scale;
      a.max_exp_avg_sq = &ps[i].vmax;
      a.param_f16 = i % 2 == 0 ? &ps[i].f16 : nullptr;
      u.push_back(a);
    }
    return u;
  };
  for (std::int64_t step : {1, 2}) {
    h.step = step;
    adamw_update(updates_of(many), h);
    for (const AdamwUpdateArgs& a : updates_of(one))
      adamw_update(a, h);
  }
  const std::pair<Tensor Param::*, const char*> outputs[] = {{&Param::p, "param"},
                                                             {&Param::m, "exp_avg"},
                                                             {&Param::v, "exp_avg_sq"},
                                                             {&Param::vmax, "max_exp_avg_sq"},
                                                             {&Param::f16, "f16 copy"}};
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    for (const auto& [t, name] : outputs)
      expect_same_bits(many[i].*t, one[i].*t, name + (" of parameter " + std::to_string(i)));
  }
  std::vector<AdamwUpdateArgs> bad = updates_of(many);
  Tensor wrong = Tensor::zeros({7}, DType::f32, dev);
  bad.back().exp_avg = &wrong;
  const Tensor before = many.front().p.clone();
  const Tensor before_m = many.front().m.clone();
  GA_EXPECT_ERROR(adamw_update(bad, h), "exp_avg of shape");
  expect_same_bits(many.front().p, before, "the first parameter after a rejected call");
  expect_same_bits(many.front().m, before_m, "the first exp_avg after a rejected call");
}

// A raised skip_if flag leaves parameter, moments, running max and f16 copy untouched; cleared,
// the same call updates.
inline void check_adamw_skip_if(Device dev) {
  const Shape s{1000};
  Tensor p = random_tensor(s, 1, DType::f32, dev);
  Tensor m = random_tensor(s, 2, DType::f32, dev);
  Tensor v = random_tensor(s, 3, DType::f32, dev, 1e-3f, 1.0f);
  Tensor vmax = random_tensor(s, 4, DType::f32, dev, 1e-3f, 1.0f);
  Tensor f16 = random_tensor(s, 5, DType::f16, dev);
  const Tensor g = random_tensor(s, 6, DType::f32, dev);
  NonFiniteFlag skip(dev);
  check_finite(Tensor::full({1}, NAN, DType::f32, dev), skip);
  ASSERT_TRUE(skip.raised());
  AdamwUpdateArgs a = args_of(p, g, m, v);
  a.max_exp_avg_sq = &vmax;
  a.param_f16 = &f16;
  a.skip_if = &skip;
  AdamwHyper h;
  h.amsgrad = true;
  const std::vector<const Tensor*> all = {&p, &m, &v, &vmax, &f16};
  std::vector<std::vector<std::uint8_t>> before;
  for (const Tensor* t : all)
    before.push_back(bytes_of(*t));
  adamw_update(a, h);
  adamw_update(std::vector<AdamwUpdateArgs>{a, a}, h);
  for (std::size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(bytes_of(*all[i]), before[i]) << "tensor " << i << " changed under a raised flag";
  skip.clear();
  adamw_update(a, h);
  for (std::size_t i = 0; i < all.size(); ++i)
    EXPECT_NE(bytes_of(*all[i]), before[i]) << "tensor " << i << " not updated";
}

// The moments' sums round their products first (no fused multiply-add), chosen so that an FMA
// would leave a residue where the rounded products cancel exactly:
//   m * beta1 + omb1 * g with beta1 = 2^-23 (omb1 = 1 - 2^-23 exactly), g = 1 + 2^-23,
//     m = -2^23: omb1 * g = 1 - 2^-46 rounds to 1, m * beta1 = -1, so m = 0 (an FMA: -2^-46);
//   v * beta2 + (omb2 * g) * g with beta2 = 2^-23, g = 1 + 2^-12: omb2 * g rounds to
//     a = 1 + 2^-12 - 2^-23, a * g to b = 1 + 2^-11 - 2^-23, and v = -b * 2^23 makes
//     v * beta2 = -b: v = 0 (an FMA: 2^-24 - 2^-35). (A negative v is no state AdamW reaches;
//     the kernel computes it all the same.)
inline void check_adamw_no_fma(Device dev) {
  struct Probe {
    float g, m0, v0;
    double beta1, beta2;
  };
  const Probe probes[] = {
      {1.0f + 0x1.0p-23f, -0x1.0p23f, 0.0f, 0x1.0p-23, 0.999},
      {1.0f + 0x1.0p-12f, 0.0f, -(1.0f + 0x1.0p-11f - 0x1.0p-23f) * 0x1.0p23f, 0.9, 0x1.0p-23}};
  for (const Probe& pr : probes) {
    Tensor p = Tensor::full({1}, 1.0f, DType::f32, dev);
    Tensor m = Tensor::full({1}, pr.m0, DType::f32, dev);
    Tensor v = Tensor::full({1}, pr.v0, DType::f32, dev);
    const Tensor g = Tensor::full({1}, pr.g, DType::f32, dev);
    adamw_update(args_of(p, g, m, v), AdamwHyper{1e-3, pr.beta1, pr.beta2, 1e-8, 0.0, false, 1});
    if (pr.m0 != 0.0f) {
      EXPECT_EQ(m.to_vector()[0], 0.0f) << "m * beta1 + omb1 * g fused";
    }
    if (pr.v0 != 0.0f) {
      EXPECT_EQ(v.to_vector()[0], 0.0f) << "v * beta2 + (omb2 * g) * g fused";
    }
  }
}

// Hyper-parameters out of PyTorch's ranges, missing or mismatched state buffers and, on the
// device, host tensors mixed in: each refused naming the argument, by the one-parameter call
// and by the several-parameter one (before its valid first update runs).
inline void check_adamw_errors(Device dev) {
  Tensor p = Tensor::zeros({4, 3}, DType::f32, dev);
  const Tensor g = Tensor::zeros({4, 3}, DType::f32, dev);
  Tensor m = Tensor::zeros({4, 3}, DType::f32, dev);
  Tensor v = Tensor::zeros({4, 3}, DType::f32, dev);
  Tensor v16 = Tensor::zeros({4, 3}, DType::f16, dev);
  Tensor flat = Tensor::zeros({12}, DType::f32, dev);
  Tensor scale2 = Tensor::zeros({2}, DType::f32, dev);
  Tensor host = Tensor::zeros({4, 3});
  const Tensor host_scale = Tensor::full({1}, 1.0f);
  NonFiniteFlag host_flag(Device::CPU);
  Tensor vmax = Tensor::zeros({4, 3}, DType::f32, dev);
  auto args = [&] {
    AdamwUpdateArgs a = args_of(p, g, m, v);
    a.max_exp_avg_sq = &vmax;
    return a;
  };
  EXPECT_NO_THROW(adamw_update(args_of(p, g, m, v), AdamwHyper{}));
  struct BadArgs {
    std::function<void(AdamwUpdateArgs&)> edit;
    bool amsgrad;
    const char* needle;
  };
  std::vector<BadArgs> bad_args = {
      {[&](AdamwUpdateArgs& a) { a.exp_avg = nullptr; }, false, "exp_avg is required"},
      {[&](AdamwUpdateArgs& a) { a.exp_avg_sq = nullptr; }, false, "exp_avg_sq is required"},
      {[&](AdamwUpdateArgs& a) { a.exp_avg_sq = &v16; }, false, "exp_avg_sq of dtype f32"},
      {[&](AdamwUpdateArgs& a) { a.exp_avg = &flat; }, false, "exp_avg of shape [4, 3]"},
      {[&](AdamwUpdateArgs& a) { a.grad = &flat; }, false, "expected grad of shape"},
      {[&](AdamwUpdateArgs& a) { a.param = &v16; }, false, "expected param of dtype f32"},
      {[&](AdamwUpdateArgs& a) { a.grad_scale = &scale2; }, false, "f32 [1]"},
      {[&](AdamwUpdateArgs& a) { a.param_f16 = &m; }, false, "param_f16 of dtype f16"},
      {[&](AdamwUpdateArgs& a) { a.max_exp_avg_sq = nullptr; }, true, "amsgrad needs a max"},
      {[&](AdamwUpdateArgs& a) { a.max_exp_avg_sq = &flat; }, true, "max_exp_avg_sq of shape"},
  };
  if (dev == Device::CUDA) {
    bad_args.push_back({[&](AdamwUpdateArgs& a) { a.grad = &host; }, false, "grad on cuda"});
    bad_args.push_back({[&](AdamwUpdateArgs& a) { a.exp_avg = &host; }, false, "exp_avg on cuda"});
    bad_args.push_back(
        {[&](AdamwUpdateArgs& a) { a.max_exp_avg_sq = &host; }, true, "max_exp_avg_sq on cuda"});
    bad_args.push_back(
        {[&](AdamwUpdateArgs& a) { a.grad_scale = &host_scale; }, false, "grad_scale on cuda"});
    bad_args.push_back({[&](AdamwUpdateArgs& a) { a.skip_if = &host_flag; }, false,
                        "expected the skip_if flag on cuda"});
    bad_args.push_back({[&](AdamwUpdateArgs& a) { a.param = &host; }, false, "one device"});
  }
  const auto p_bytes = bytes_of(p);
  for (const BadArgs& b : bad_args) {
    AdamwUpdateArgs a = args();
    b.edit(a);
    AdamwHyper h;
    h.amsgrad = b.amsgrad;
    GA_EXPECT_ERROR(adamw_update(a, h), b.needle);
    GA_EXPECT_ERROR(adamw_update(std::vector<AdamwUpdateArgs>{args(), a}, h), b.needle);
  }
  struct BadHyper {
    AdamwHyper h;
    const char* needle;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<BadHyper> bad = {
      {AdamwHyper{-1e-3, 0.9, 0.999, 1e-8, 0.0, false, 1}, "expected a finite lr >= 0"},
      {AdamwHyper{nan, 0.9, 0.999, 1e-8, 0.0, false, 1}, "invalid learning rate"},
      {AdamwHyper{1e-3, 0.9, 0.999, -1e-8, 0.0, false, 1}, "expected a finite eps >= 0"},
      {AdamwHyper{1e-3, 1.0, 0.999, 1e-8, 0.0, false, 1}, "expected 0 <= beta1 < 1"},
      {AdamwHyper{1e-3, -0.1, 0.999, 1e-8, 0.0, false, 1}, "invalid beta1 -0.1"},
      {AdamwHyper{1e-3, 0.9, 1.0, 1e-8, 0.0, false, 1}, "expected 0 <= beta2 < 1"},
      {AdamwHyper{1e-3, 0.9, nan, 1e-8, 0.0, false, 1}, "invalid beta2"},
      {AdamwHyper{1e-3, 0.9, 0.999, 1e-8, -1e-2, false, 1}, "expected a finite weight_decay >= 0"},
      {AdamwHyper{1e-3, 0.9, 0.999, 1e-8, inf, false, 1}, "invalid weight_decay"},
      {AdamwHyper{1e-3, 0.9, 0.999, 1e-8, 0.0, false, 0}, "invalid step 0"},
  };
  for (const BadHyper& b : bad) {
    GA_EXPECT_ERROR(adamw_update(args(), b.h), b.needle);
    GA_EXPECT_ERROR(adamw_update(std::vector<AdamwUpdateArgs>{args()}, b.h), b.needle);
  }
  EXPECT_EQ(bytes_of(p), p_bytes);
}

// ---- PyTorch's own bits (scripts/make_torch_adamw_fixtures.py) ------------------------------

inline std::string fixture_dir(const std::string& name) {
  return std::string(GRADACCUM_SOURCE_DIR) + "/tests/data/torch_adamw/" + name;
}

inline std::map<std::string, std::string> read_config(const std::string& dir) {
  std::ifstream in(dir + "/config.txt");
  EXPECT_TRUE(in.good()) << "missing " << dir
                         << "/config.txt (run scripts/make_torch_adamw_fixtures.py)";
  std::map<std::string, std::string> kv;
  std::string k, v;
  while (in >> k >> v)
    kv[k] = v;
  return kv;
}

inline optim::AdamWOptions options_of(std::map<std::string, std::string>& cfg) {
  return optim::AdamWOptions(std::stod(cfg["lr"]))
      .betas(std::stod(cfg["beta1"]), std::stod(cfg["beta2"]))
      .eps(std::stod(cfg["eps"]))
      .weight_decay(std::stod(cfg["weight_decay"]))
      .amsgrad(cfg["amsgrad"] == "1");
}

// Row `step` of a [steps, n] fixture, as an [n] tensor on `dev`.
inline Tensor row(const Tensor& t, std::int64_t step, Device dev) {
  return t.rows(step, step + 1).reshape({t.size(1)}).to(dev);
}

// PyTorch's AdamW on one tensor (an update_* fixture): every step's parameter and state, to the
// bit, from zeroed moments as PyTorch starts them.
inline void check_torch_update(Device dev, const std::string& name) {
  SCOPED_TRACE(name + " on " + device_name(dev));
  const std::string dir = fixture_dir(name);
  auto cfg = read_config(dir);
  ASSERT_FALSE(cfg.empty());
  const optim::AdamWOptions o = options_of(cfg);
  const std::int64_t steps = std::stoll(cfg["steps"]);
  const Tensor grads = load_npy(dir + "/grads.npy");
  std::map<std::string, Tensor> want;
  for (const char* k : {"param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}) {
    if (k != std::string("max_exp_avg_sq") || o.amsgrad()) {
      want[k] = load_npy(dir + "/" + k + ".npy");
    }
  }
  Tensor p = load_npy(dir + "/param0.npy").to(dev);
  const Shape shape = p.shape();
  Tensor m = Tensor::zeros(shape, DType::f32, dev), v = Tensor::zeros(shape, DType::f32, dev);
  Tensor vmax = Tensor::zeros(shape, DType::f32, dev);
  const AdamwHyper base{o.lr(), o.beta1(), o.beta2(), o.eps(), o.weight_decay(), o.amsgrad(), 1};
  for (std::int64_t s = 0; s < steps; ++s) {
    const Tensor g = row(grads, s, dev);
    AdamwUpdateArgs a = args_of(p, g, m, v);
    a.max_exp_avg_sq = o.amsgrad() ? &vmax : nullptr;
    AdamwHyper h = base;
    h.step = s + 1;
    adamw_update(a, h);
    const std::string at = " after step " + std::to_string(s + 1);
    expect_same_bits(p, row(want["param"], s, dev), "param" + at);
    expect_same_bits(m, row(want["exp_avg"], s, dev), "exp_avg" + at);
    expect_same_bits(v, row(want["exp_avg_sq"], s, dev), "exp_avg_sq" + at);
    if (o.amsgrad()) expect_same_bits(vmax, row(want["max_exp_avg_sq"], s, dev), "vmax" + at);
  }
}

inline const std::vector<std::string>& torch_update_cases() {
  static const std::vector<std::string> names = {"update_defaults", "update_amsgrad_wd",
                                                 "update_betas_eps"};
  return names;
}

}  // namespace gradaccum::test::adamw
