// Gradient checks: every op and a whole MLP against central finite differences of a float64
// evaluation of the same function (written here, independent of the kernels). The functions are
// piecewise linear, so a difference quotient is exact up to rounding wherever no kink (ReLU at 0,
// |·| at 0) lies within h of the point: such coordinates are skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "mlp_helpers.h"

namespace gradaccum::test {
namespace {

using autograd::Variable;
using Vec = std::vector<double>;

constexpr double kH = 1e-4;

std::vector<double> to_double(const Tensor& t) {
  auto v = t.to_vector();
  return {v.begin(), v.end()};
}

// y[n, o] = Σ_i x[n, i] w[o, i] + b[o]
Vec linear64(const Vec& x, const Vec& w, const Vec* b, int n, int in, int out) {
  Vec y(static_cast<std::size_t>(n * out));
  for (int r = 0; r < n; ++r) {
    for (int o = 0; o < out; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (int i = 0; i < in; ++i)
        s += x[r * in + i] * w[o * in + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

// A function of one flat vector of inputs, plus a "kink signature": the sign pattern of every
// quantity whose sign change makes the function non-differentiable.
struct Fn {
  std::function<double(const Vec&)> value;
  std::function<std::vector<int>(const Vec&)> kinks;
};

// Checks d value / d inputs[i] (i in [begin, end)) against `grad` (f32 autograd result).
void check_block(const Fn& f, Vec point, std::size_t begin, const std::vector<float>& grad,
                 const char* what) {
  int checked = 0, skipped = 0;
  const std::vector<int> base = f.kinks(point);
  for (std::size_t j = 0; j < grad.size(); ++j) {
    Vec plus = point, minus = point;
    plus[begin + j] += kH;
    minus[begin + j] -= kH;
    if (f.kinks(plus) != base || f.kinks(minus) != base) {
      ++skipped;  // a kink within h: not differentiable here
      continue;
    }
    const double fd = (f.value(plus) - f.value(minus)) / (2 * kH);
    EXPECT_NEAR(grad[j], fd, 1e-4 * std::max(1.0, std::fabs(fd))) << what << "[" << j << "]";
    ++checked;
  }
  EXPECT_GT(checked, 0) << what << ": every coordinate was skipped";
  EXPECT_LE(skipped, static_cast<int>(grad.size()) / 2) << what;
}

std::vector<int> signs(const Vec& v) {
  std::vector<int> s;
  for (double x : v)
    s.push_back(x > 0 ? 1 : (x < 0 ? -1 : 0));
  return s;
}

Vec slice(const Vec& v, std::size_t begin, std::size_t n) {
  return Vec(v.begin() + static_cast<std::ptrdiff_t>(begin),
             v.begin() + static_cast<std::ptrdiff_t>(begin + n));
}

TEST(GradCheck, LinearWithSeed) {
  const int n = 3, in = 4, out = 5;
  Variable x(random_tensor({n, in}, 1), /*requires_grad=*/true, "x");
  Variable w(random_tensor({out, in}, 2), true, "w");
  Variable b(random_tensor({out}, 3), true, "b");
  Tensor seed = random_tensor({n, out}, 4);
  autograd::linear(x, w, b).backward(seed);
  const Vec c = to_double(seed);
  // f(x, w, b) = Σ c ⊙ linear(x, w, b)
  Fn f;
  f.value = [&](const Vec& p) {
    Vec wv = slice(p, n * in, out * in), bv = slice(p, n * in + out * in, out);
    Vec y = linear64(slice(p, 0, n * in), wv, &bv, n, in, out);
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
      s += c[i] * y[i];
    return s;
  };
  f.kinks = [](const Vec&) { return std::vector<int>{}; };
  Vec point = to_double(x.value());
  for (double v : to_double(w.value()))
    point.push_back(v);
  for (double v : to_double(b.value()))
    point.push_back(v);
  check_block(f, point, 0, x.grad().to_vector(), "dx");
  check_block(f, point, n * in, w.grad().to_vector(), "dw");
  check_block(f, point, n * in + out * in, b.grad().to_vector(), "db");
}

TEST(GradCheck, Relu) {
  Variable x(random_tensor({4, 6}, 5), true, "x");
  Tensor seed = random_tensor({4, 6}, 6);
  autograd::relu(x).backward(seed);
  const Vec c = to_double(seed);
  Fn f;
  f.value = [&](const Vec& p) {
    double s = 0;
    for (std::size_t i = 0; i < p.size(); ++i)
      s += c[i] * std::max(p[i], 0.0);
    return s;
  };
  f.kinks = signs;
  check_block(f, to_double(x.value()), 0, x.grad().to_vector(), "relu dx");
}

TEST(GradCheck, L1LossMeanAndSum) {
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    Variable pred(random_tensor({5, 3}, 7), true, "pred");
    Variable target(random_tensor({5, 3}, 8), true, "target");
    Variable loss = autograd::l1_loss(pred, target, r);
    const double count = r == Reduction::Mean ? 15.0 : 1.0;
    Fn f;
    f.value = [&](const Vec& p) {
      double s = 0;
      for (std::size_t i = 0; i < 15; ++i)
        s += std::fabs(p[i] - p[15 + i]);
      return s / count;
    };
    f.kinks = [](const Vec& p) {
      Vec d;
      for (std::size_t i = 0; i < 15; ++i)
        d.push_back(p[i] - p[15 + i]);
      return signs(d);
    };
    Vec point = to_double(pred.value());
    for (double v : to_double(target.value()))
      point.push_back(v);
    EXPECT_NEAR(loss.item(), f.value(point), 1e-5) << reduction_name(r);
    loss.backward();
    check_block(f, point, 0, pred.grad().to_vector(), "dpred");
    check_block(f, point, 15, target.grad().to_vector(), "dtarget");
  }
}

// The forum's MLP, bigger: Linear(in, hidden) → ReLU → Linear(hidden, out), L1 loss.
void check_mlp(Reduction r, bool fuse) {
  const int n = 6, in = 4, hidden = 8, out = 3;
  nn::Sequential model = make_mlp(in, hidden, out, 21);
  model.set_fuse_relu(fuse);
  Tensor xt = random_tensor({n, in}, 30);
  Tensor yt = random_tensor({n, out}, 31);
  Variable loss = nn::L1Loss(r)(model(Variable(xt.clone())), Variable(yt.clone()));
  loss.backward();
  const Vec x = to_double(xt), y = to_double(yt);
  const std::size_t s1 = hidden * in, s2 = s1 + hidden, s3 = s2 + out * hidden, s4 = s3 + out;
  auto forward = [&](const Vec& p, Vec* pre, Vec* resid) {
    Vec w1 = slice(p, 0, s1), b1 = slice(p, s1, hidden), w2 = slice(p, s2, out * hidden),
        b2 = slice(p, s3, out);
    Vec z = linear64(x, w1, &b1, n, in, hidden);
    Vec h = z;
    for (double& v : h)
      v = std::max(v, 0.0);
    Vec o = linear64(h, w2, &b2, n, hidden, out);
    for (std::size_t i = 0; i < o.size(); ++i)
      o[i] -= y[i];
    if (pre) *pre = z;
    if (resid) *resid = o;
    double s = 0;
    for (double v : o)
      s += std::fabs(v);
    return r == Reduction::Mean ? s / (n * out) : s;
  };
  Fn f;
  f.value = [&](const Vec& p) { return forward(p, nullptr, nullptr); };
  f.kinks = [&](const Vec& p) {
    Vec z, d;
    forward(p, &z, &d);
    std::vector<int> k = signs(z), kd = signs(d);
    k.insert(k.end(), kd.begin(), kd.end());
    return k;
  };
  Vec point;
  for (const auto& p : model.parameters()) {
    for (double v : to_double(p.value()))
      point.push_back(v);
  }
  ASSERT_EQ(point.size(), s4);
  EXPECT_NEAR(loss.item(), f.value(point), 1e-5);
  auto params = model.parameters();
  check_block(f, point, 0, params[0].grad().to_vector(), "fc1.weight");
  check_block(f, point, s1, params[1].grad().to_vector(), "fc1.bias");
  check_block(f, point, s2, params[2].grad().to_vector(), "fc2.weight");
  check_block(f, point, s3, params[3].grad().to_vector(), "fc2.bias");
}

TEST(GradCheck, MlpMean) {
  check_mlp(Reduction::Mean, true);
}
TEST(GradCheck, MlpSum) {
  check_mlp(Reduction::Sum, true);
}
TEST(GradCheck, MlpUnfused) {
  check_mlp(Reduction::Mean, false);
}

}  // namespace
}  // namespace gradaccum::test
