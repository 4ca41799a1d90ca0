// ExactSum on the CPU against an independent big-integer reference (tests/exact_reference.h):
// every result is the exact sum rounded once to f32, for adversarial addends (huge plus tiny,
// cancellation to zero and to a subnormal, +-max finite, subnormals, ties, 10^6 addends), in any
// order; non-finite addends are flagged and left out; bad arguments are errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "exact_reference.h"
#include "kernels/exact_sum.h"
#include "test_util.h"

namespace gradaccum::test {
namespace {

float bits_to_float(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
std::uint32_t float_to_bits(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

// Sums columns: addends[k][i] is the k-th addend of element i.
std::vector<float> exact_sums(const std::vector<std::vector<float>>& addends,
                              Device d = Device::CPU) {
  const auto n = static_cast<std::int64_t>(addends.front().size());
  ExactSum acc({n}, d);
  for (const auto& row : addends)
    acc.add(Tensor::from_vector(row, {n}, DType::f32, d));
  Tensor out = poisoned({n}, DType::f32, d);
  acc.round_to(out);
  return out.to_vector();
}

std::vector<float> reference_sums(const std::vector<std::vector<float>>& addends) {
  std::vector<float> out;
  for (std::size_t i = 0; i < addends.front().size(); ++i) {
    BigSum s;
    for (const auto& row : addends)
      s.add(row[i]);
    out.push_back(s.round());
  }
  return out;
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(float_to_bits(got[i]), float_to_bits(want[i]))
        << "element " << i << ": got " << got[i] << ", want " << want[i];
  }
}

// Any finite float: random sign, exponent field 0..254, mantissa.
float random_finite(std::mt19937& rng) {
  std::uint32_t b;
  do {
    b = static_cast<std::uint32_t>(rng());
  } while (((b >> 23) & 0xffu) == 0xffu);
  return bits_to_float(b);
}

TEST(ExactSum, OneAddendIsItself) {
  std::mt19937 rng(1);
  std::vector<float> v(4096);
  for (float& x : v)
    x = random_finite(rng);
  v[0] = std::numeric_limits<float>::max();
  v[1] = -std::numeric_limits<float>::max();
  v[2] = std::numeric_limits<float>::denorm_min();
  v[3] = -0.0f;  // an exact zero sum is +0
  std::vector<float> got = exact_sums({v});
  v[3] = 0.0f;
  expect_same_bits(got, v);
}

TEST(ExactSum, RandomAddendsOverTheWholeRangeRoundOnce) {
  std::mt19937 rng(2);
  // Element i draws its exponents from a window of width 20 + i % 60 somewhere in the range:
  // from wide (anything, mostly dominated by the largest) to narrow (close magnitudes that
  // cancel, where the sticky and round bits matter).
  const int n = 512, k = 200;
  std::vector<std::vector<float>> a(k, std::vector<float>(n));
  for (int i = 0; i < n; ++i) {
    const int width = 20 + i % 60;
    const int base = static_cast<int>(rng() % static_cast<unsigned>(255 - width));
    for (int r = 0; r < k; ++r) {
      const std::uint32_t e = static_cast<std::uint32_t>(base + static_cast<int>(rng() % width));
      const std::uint32_t b = ((rng() & 1u) << 31) | (e << 23) | (rng() & 0x7fffffu);
      a[r][i] = bits_to_float(b);
    }
  }
  expect_same_bits(exact_sums(a), reference_sums(a));
}

TEST(ExactSum, AdversarialCases) {
  const float max = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  const float minnorm = std::numeric_limits<float>::min();
  struct Case {
    std::vector<float> addends;
    float want;
  };
  const std::vector<Case> cases = {
      {{0x1p127f, tiny, -0x1p127f}, tiny},                   // huge + tiny - huge
      {{1.0f, 0x1p-24f}, 1.0f},                              // a tie: to even (down)
      {{1.0f, 0x1p-23f, 0x1p-24f}, 1.0f + 0x1p-22f},         // a tie: to even (up)
      {{1.0f, 0x1p-24f, tiny}, 1.0f + 0x1p-23f},             // past the tie by 2^-149
      {{0x1p100f, 1.0f, -0x1p100f}, 1.0f},                   // cancellation leaves the small
      {{3.0f, -3.0f, 1e-30f, -1e-30f}, 0.0f},                // to zero
      {{minnorm, -minnorm, tiny, tiny, tiny}, 3 * tiny},     // to a subnormal
      {{minnorm, -tiny}, bits_to_float(0x007fffffu)},        // the largest subnormal
      {{max, max}, std::numeric_limits<float>::infinity()},  // past max: infinity
      {{max, max, -max}, max},                               // back in range: exact
      {{-max, -max}, -std::numeric_limits<float>::infinity()},
      {{max, 0x1p103f}, std::numeric_limits<float>::infinity()},  // half an ulp past max: tie,
                                                                  // to "even" infinity
      {{max, 0x1p102f}, max},                                     // below the tie
  };
  std::vector<std::vector<float>> cols;
  std::size_t longest = 0;
  for (const Case& c : cases)
    longest = std::max(longest, c.addends.size());
  cols.assign(longest, std::vector<float>(cases.size(), 0.0f));
  std::vector<float> want;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    for (std::size_t r = 0; r < cases[i].addends.size(); ++r)
      cols[r][i] = cases[i].addends[r];
    want.push_back(cases[i].want);
  }
  expect_same_bits(exact_sums(cols), want);
  expect_same_bits(reference_sums(cols), want);  // the reference agrees with the cases
}

TEST(ExactSum, SubnormalsSumExactly) {
  std::mt19937 rng(3);
  std::vector<std::vector<float>> a(1000, std::vector<float>(64));
  for (auto& row : a) {
    for (float& x : row)
      x = bits_to_float((rng() & 0x807fffffu));  // subnormals of both signs
  }
  expect_same_bits(exact_sums(a), reference_sums(a));
}

TEST(ExactSum, AMillionAddends) {
  std::mt19937 rng(4);
  const int n = 4;
  ExactSum acc({n}, Device::CPU);
  std::vector<BigSum> ref(n);
  std::vector<float> row(n);
  for (int k = 0; k < 1000000; ++k) {
    for (int i = 0; i < n; ++i) {
      // Element 0: values near 1 (the chain a plain f32 sum stagnates on); 1: random sign, so
      // the sum random-walks; 2 and 3: any finite value.
      row[i] = i == 0 ? 1.0f + static_cast<float>(rng() % 1024) * 0x1p-30f
               : i == 1
                   ? ((rng() & 1u) ? 1.0f : -1.0f) * 0x1p-20f * static_cast<float>(rng() % 4096)
                   : random_finite(rng);
      ref[static_cast<std::size_t>(i)].add(row[i]);
    }
    acc.add(Tensor::from_vector(row, {n}));
  }
  Tensor out = poisoned({n});
  acc.round_to(out);
  std::vector<float> want;
  for (const BigSum& s : ref)
    want.push_back(s.round());
  expect_same_bits(out.to_vector(), want);
}

TEST(ExactSum, OrderDoesNotChangeABit) {
  std::mt19937 rng(5);
  const int n = 256, k = 64;
  std::vector<std::vector<float>> a(k, std::vector<float>(n));
  for (auto& row : a) {
    for (float& x : row)
      x = random_finite(rng);
  }
  ExactSum first({n}, Device::CPU);
  for (const auto& row : a)
    first.add(Tensor::from_vector(row, {n}));
  for (int trial = 0; trial < 3; ++trial) {
    std::shuffle(a.begin(), a.end(), rng);
    ExactSum again({n}, Device::CPU);
    for (const auto& row : a)
      again.add(Tensor::from_vector(row, {n}));
    EXPECT_EQ(std::memcmp(first.limbs().data(), again.limbs().data(), first.limbs().bytes()), 0)
        << "the limbs themselves are the same, not only the rounded sums";
  }
}

TEST(ExactSum, NonFiniteAddendsAreFlaggedAndLeftOut) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  ExactSum acc({4}, Device::CPU);
  NonFiniteFlag flag(Device::CPU);
  acc.add(Tensor::from_vector({1.0f, 2.0f, 3.0f, 4.0f}, {4}), {nullptr, &flag});
  EXPECT_FALSE(flag.raised());
  acc.add(Tensor::from_vector({inf, 0.5f, nan, -inf}, {4}), {nullptr, &flag});
  EXPECT_TRUE(flag.raised());
  Tensor out = poisoned({4});
  acc.round_to(out);
  EXPECT_EQ(out.to_vector(), (std::vector<float>{1.0f, 2.5f, 3.0f, 4.0f}));
  // A finite addend that a scale makes infinite is left out too.
  NonFiniteFlag f2(Device::CPU);
  Tensor big = Tensor::full({1}, 0x1p100f);
  acc.add(Tensor::from_vector({0x1p100f, 1.0f, 1.0f, 1.0f}, {4}), {&big, &f2});
  EXPECT_TRUE(f2.raised());
  acc.round_to(out);
  EXPECT_EQ(out.to_vector(),
            (std::vector<float>{1.0f, 2.5f + 0x1p100f, 3.0f + 0x1p100f, 4.0f + 0x1p100f}));
}

TEST(ExactSum, ScaleSkipF16AndZero) {
  ExactSum acc({3}, Device::CPU);
  Tensor half_scale = Tensor::full({1}, 0.5f);
  acc.add(Tensor::from_vector({1.0f, -3.0f, 0.1f}, {3}), {&half_scale});
  NonFiniteFlag skip(Device::CPU);
  skip.set(true);
  acc.add(Tensor::from_vector({100.0f, 100.0f, 100.0f}, {3}), {nullptr, nullptr, &skip});
  acc.add(Tensor::from_vector({0.25f, 0.25f, 1.0f}, {3}, DType::f16));
  Tensor out = poisoned({3});
  acc.round_to(out);
  EXPECT_EQ(out.to_vector(), (std::vector<float>{0.75f, -1.25f, 0.1f * 0.5f + 1.0f}));
  acc.zero();
  acc.round_to(out);
  EXPECT_EQ(out.to_vector(), (std::vector<float>{0.0f, 0.0f, 0.0f}));
}

TEST(ExactSum, BadArgumentsAreErrors) {
  ExactSum acc({2, 3}, Device::CPU);
  EXPECT_THROW(acc.add(Tensor::zeros({3, 2})), Error);
  EXPECT_THROW(acc.add(Tensor()), Error);
  Tensor wrong_shape = Tensor::zeros({6});
  EXPECT_THROW(acc.round_to(wrong_shape), Error);
  Tensor f16 = Tensor::zeros({2, 3}, DType::f16);
  EXPECT_THROW(acc.round_to(f16), Error);
  Tensor two = Tensor::full({2}, 1.0f);
  EXPECT_THROW(acc.add(Tensor::zeros({2, 3}), {&two}), Error);
  EXPECT_NO_THROW(ExactSum::check_addends(ExactSum::kMaxAddends, "test"));
  try {
    ExactSum::check_addends(ExactSum::kMaxAddends + 1, "test");
    ADD_FAILURE() << "past the limit must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at most 2147483647 addends"), std::string::npos)
        << e.what();
  }
  ExactSum undefined;
  EXPECT_THROW(undefined.zero(), Error);
  EXPECT_EQ(ExactSum::kBytesPerElement, 72u);
  EXPECT_EQ(acc.limbs().bytes(), 6u * 72u);
}

}  // namespace
}  // namespace gradaccum::test
