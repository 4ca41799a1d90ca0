// Seeded random tensors: reproducible, counter-based, within their bounds.
#include "core/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

namespace gradaccum {
namespace {

TEST(Random, SameSeedSameValues) {
  EXPECT_EQ(uniform({7, 5}, -2.0f, 3.0f, 42).to_vector(),
            uniform({7, 5}, -2.0f, 3.0f, 42).to_vector());
  EXPECT_EQ(normal({100}, 1.0f, 2.0f, 42).to_vector(), normal({100}, 1.0f, 2.0f, 42).to_vector());
  EXPECT_EQ(linear_weight_init(16, 8, 3).to_vector(), linear_weight_init(16, 8, 3).to_vector());
  CounterRng a(9), b(9);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(a.next(), b.next());
}

TEST(Random, DifferentSeedsDiffer) {
  std::set<std::vector<float>> seen;
  for (std::uint64_t seed : {0ull, 1ull, 2ull, 3ull, 1ull << 32, ~0ull}) {
    const std::vector<float> v = uniform({64}, 0.0f, 1.0f, seed).to_vector();
    EXPECT_TRUE(seen.insert(v).second) << "seed " << seed << " repeats another seed's values";
  }
  // Not merely different somewhere: hardly any element agrees.
  const std::vector<float> a = uniform({1000}, 0.0f, 1.0f, 0).to_vector();
  const std::vector<float> b = uniform({1000}, 0.0f, 1.0f, 1).to_vector();
  int equal = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    equal += a[i] == b[i];
  EXPECT_LT(equal, 5);
  EXPECT_NE(normal({64}, 0, 1, 5).to_vector(), normal({64}, 0, 1, 6).to_vector());
}

TEST(Random, CounterRngIsCounterBased) {
  // The value at counter i does not depend on how many values were drawn before.
  CounterRng seq(1234);
  std::vector<std::uint64_t> drawn;
  for (int i = 0; i < 50; ++i)
    drawn.push_back(seq.next());
  for (std::uint64_t i = 0; i < 50; ++i) {
    CounterRng jump(1234, i);
    EXPECT_EQ(jump.next(), drawn[i]) << "counter " << i;
  }
  // Tensor element i is CounterRng(seed, i).uniform() scaled, whatever the tensor's size.
  const std::vector<float> small = uniform({10}, -1.0f, 1.0f, 77).to_vector();
  const std::vector<float> big = uniform({100, 10}, -1.0f, 1.0f, 77).to_vector();
  for (std::size_t i = 0; i < small.size(); ++i) {
    EXPECT_EQ(small[i], big[i]);
    CounterRng r(77, i);
    EXPECT_EQ(small[i], -1.0f + 2.0f * r.uniform());
  }
  // normal() uses two counters per element: 2i and 2i + 1.
  const std::vector<float> n = normal({8}, 0.0f, 1.0f, 5).to_vector();
  for (std::uint64_t i = 0; i < n.size(); ++i) {
    CounterRng r(5, 2 * i);
    EXPECT_EQ(n[i], r.normal()) << i;
  }
}

TEST(Random, UniformUnitIsHalfOpenWith24Bits) {
  CounterRng rng(3);
  for (int i = 0; i < 100000; ++i) {
    const float u = rng.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    ASSERT_EQ(u * 0x1.0p24f, std::floor(u * 0x1.0p24f));  // a multiple of 2^-24
  }
}

TEST(Random, UniformStaysWithinBounds) {
  struct Range {
    float low, high;
  };
  for (Range r :
       {Range{-1.0f, 1.0f}, Range{0.0f, 1e-30f}, Range{1.0f, 1.0000001f}, Range{100.0f, 100.00002f},
        Range{-1e30f, 1e30f}, Range{5.0f, 5.0f}, Range{-3.0f, -2.0f}}) {
    SCOPED_TRACE(std::to_string(r.low) + ", " + std::to_string(r.high));
    const std::vector<float> v = uniform({20000}, r.low, r.high, 11).to_vector();
    for (float x : v) {
      ASSERT_GE(x, r.low);
      if (r.low < r.high) {
        ASSERT_LT(x, r.high);
      } else {
        ASSERT_EQ(x, r.low);
      }
    }
  }
  // Mean and spread of U(-1, 1): mean 0, variance 1/3.
  const std::vector<float> v = uniform({100000}, -1.0f, 1.0f, 12).to_vector();
  double sum = 0, sq = 0;
  for (float x : v) {
    sum += x;
    sq += static_cast<double>(x) * x;
  }
  EXPECT_NEAR(sum / v.size(), 0.0, 0.01);
  EXPECT_NEAR(sq / v.size(), 1.0 / 3.0, 0.01);
  // f16: rounded, within the closed interval.
  for (float x : uniform({1000}, -1.0f, 1.0f, 13, DType::f16).to_vector()) {
    ASSERT_GE(x, -1.0f);
    ASSERT_LE(x, 1.0f);
  }
}

TEST(Random, NormalHasTheRightMoments) {
  const std::vector<float> v = normal({200000}, 3.0f, 2.0f, 21).to_vector();
  double sum = 0, sq = 0;
  for (float x : v) {
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
  }
  const double mean = sum / v.size();
  for (float x : v)
    sq += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 3.0, 0.02);
  EXPECT_NEAR(std::sqrt(sq / v.size()), 2.0, 0.02);
  EXPECT_EQ(normal({10}, 4.0f, 0.0f, 1).to_vector(), std::vector<float>(10, 4.0f));
}

TEST(Random, KaimingBounds) {
  for (std::int64_t in : {1, 3, 100, 1000}) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    Tensor w = linear_weight_init(in, 64, 5);
    Tensor b = linear_bias_init(in, 64, 6);
    EXPECT_EQ(w.shape(), Shape({64, in}));
    EXPECT_EQ(b.shape(), Shape({64}));
    float max_abs = 0;
    for (float x : w.to_vector()) {
      ASSERT_GE(x, -bound);
      ASSERT_LT(x, bound);
      max_abs = std::max(max_abs, std::fabs(x));
    }
    EXPECT_GT(max_abs, 0.9f * bound);  // actually spans the interval
    for (float x : b.to_vector()) {
      ASSERT_GE(x, -bound);
      ASSERT_LT(x, bound);
    }
  }
  EXPECT_EQ(linear_weight_init(4, 2, 1, DType::f16).dtype(), DType::f16);
}

TEST(Random, InvalidArgumentsAreErrors) {
  EXPECT_THROW(uniform({4}, 1.0f, 0.0f, 1), Error);
  EXPECT_THROW(uniform({4}, std::numeric_limits<float>::quiet_NaN(), 1.0f, 1), Error);
  EXPECT_THROW(uniform({4}, 0.0f, std::numeric_limits<float>::infinity(), 1), Error);
  EXPECT_THROW(uniform({4}, -3e38f, 3e38f, 1), Error);  // the width overflows
  EXPECT_THROW(normal({4}, 0.0f, -1.0f, 1), Error);
  EXPECT_THROW(normal({4}, 0.0f, std::numeric_limits<float>::quiet_NaN(), 1), Error);
  EXPECT_THROW(linear_weight_init(0, 4, 1), Error);
  EXPECT_THROW(linear_bias_init(4, 0, 1), Error);
}

TEST(Random, ZeroSizeAndScalar) {
  EXPECT_EQ(uniform({0, 3}, 0, 1, 1).numel(), 0);
  Tensor s = normal(Shape(), 0, 1, 1);
  EXPECT_EQ(s.numel(), 1);
}

}  // namespace
}  // namespace gradaccum
