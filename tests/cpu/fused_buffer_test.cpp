// dist::FusedBuffer and fold_words: the arithmetic of a distributed step's reduction,
// checked against float64 and integer references on random words, chunk by chunk.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "dist/fused_buffer.h"
#include "test_util.h"

namespace gradaccum::dist {
namespace {

using test::random_values;

std::vector<Segment> layout_of(std::size_t floats, std::size_t pairs, std::size_t counts) {
  FusedBuffer b;
  b.add(ReduceOp::SumF32, floats, "f32");
  b.add(ReduceOp::SumKahanF32, pairs, "kahan");
  b.add(ReduceOp::SumU64, counts, "sum");
  b.add(ReduceOp::MaxU64, counts, "max");
  b.add(ReduceOp::MinU64, counts, "min");
  return b.segments();
}

TEST(FusedBuffer, SegmentsAreLaidOutInWords) {
  FusedBuffer b;
  EXPECT_EQ(b.add(ReduceOp::SumF32, 5, "a"), 0u);  // 3 words: the fifth float pads one
  EXPECT_EQ(b.add(ReduceOp::SumKahanF32, 4, "b"), 1u);
  EXPECT_EQ(b.add(ReduceOp::SumU64, 2, "c"), 2u);
  b.allocate();
  EXPECT_EQ(b.words(), 3u + 4u + 2u);
  EXPECT_EQ(b.bytes(), b.words() * kWordBytes);
  EXPECT_EQ(b.segments()[1].word_offset, 3u);
  EXPECT_EQ(b.segments()[2].word_offset, 7u);
  EXPECT_EQ(reinterpret_cast<std::uint64_t*>(b.f32(1)), b.data() + 3);
  EXPECT_EQ(b.u64(2), b.data() + 7);
  for (std::size_t w = 0; w < b.words(); ++w)
    EXPECT_EQ(b.data()[w], 0u) << "allocate() zeroes the words";
  EXPECT_THROW(b.u64(0), Error);
  EXPECT_THROW(b.f32(2), Error);
  EXPECT_THROW(b.add(ReduceOp::SumF32, 1, "late"), Error);
}

TEST(FusedBuffer, LayoutHashSeesOpsAndSizesNotNames) {
  FusedBuffer a, b, c;
  a.add(ReduceOp::SumF32, 6, "x");
  b.add(ReduceOp::SumF32, 6, "y");
  c.add(ReduceOp::SumKahanF32, 3, "x");  // same words, other op
  EXPECT_EQ(a.layout_hash(), b.layout_hash());
  EXPECT_NE(a.layout_hash(), c.layout_hash());
  FusedBuffer d;
  d.add(ReduceOp::SumF32, 5, "x");  // same words (3), other element count
  EXPECT_NE(a.layout_hash(), d.layout_hash());
}

TEST(FusedBuffer, ChunksCoverTheBufferEvenly) {
  for (std::size_t words : {0u, 1u, 7u, 64u, 1001u}) {
    for (int ranks : {1, 2, 3, 4, 7}) {
      EXPECT_EQ(chunk_begin(words, ranks, 0), 0u);
      EXPECT_EQ(chunk_begin(words, ranks, ranks), words);
      for (int r = 0; r < ranks; ++r) {
        const std::size_t len = chunk_begin(words, ranks, r + 1) - chunk_begin(words, ranks, r);
        EXPECT_TRUE(len == words / ranks || len == words / ranks + 1) << words << " " << ranks;
      }
    }
  }
  EXPECT_THROW(chunk_begin(10, 0, 0), Error);
  EXPECT_THROW(chunk_begin(10, 2, 3), Error);
}

// Four ranks' random buffers, combined in rank order chunk by chunk (as a backend does): every
// word equals the reference of its op, and the chunking does not change a bit.
TEST(CombineWords, RankOrderMatchesReferencesForEveryOp) {
  const std::size_t floats = 37, pairs = 11, counts = 5;
  const std::vector<Segment> segs = layout_of(floats, pairs, counts);
  const std::size_t words = segs.back().word_offset + segs.back().words;
  const int ranks = 4;
  std::vector<std::vector<std::uint64_t>> bufs(ranks, std::vector<std::uint64_t>(words, 0));
  for (int r = 0; r < ranks; ++r) {
    const std::vector<float> f = random_values(static_cast<std::int64_t>(floats), 10 + r, -4, 4);
    std::memcpy(bufs[r].data(), f.data(), floats * sizeof(float));
    const std::vector<float> p = random_values(static_cast<std::int64_t>(2 * pairs), 20 + r, -1, 1);
    float* kp = reinterpret_cast<float*>(bufs[r].data() + segs[1].word_offset);
    for (std::size_t i = 0; i < pairs; ++i) {
      kp[2 * i] = p[2 * i] * 1000.0f;
      kp[2 * i + 1] = p[2 * i + 1] * 1e-5f;  // a compensation is far below its sum
    }
    for (int s = 2; s < 5; ++s) {
      for (std::size_t i = 0; i < counts; ++i)
        bufs[r][segs[s].word_offset + i] = (std::uint64_t{1} << 40) * (r + 1) + i * 7919 + r * 13;
    }
  }
  // Whole buffer in one chunk, and in three chunks cut at odd places: the same bits.
  for (const std::vector<std::size_t>& cuts :
       {std::vector<std::size_t>{0, words}, std::vector<std::size_t>{0, 5, 21, words}}) {
    // Folded in place into rank 1's copy, as that rank does for its own chunk.
    std::vector<std::uint64_t> acc = bufs[1];
    for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
      std::vector<const std::uint64_t*> src;
      for (int r = 0; r < ranks; ++r)
        src.push_back(r == 1 ? acc.data() + cuts[c] : bufs[r].data() + cuts[c]);
      fold_words(segs, acc.data() + cuts[c], src.data(), ranks, cuts[c], cuts[c + 1]);
    }
    const float* out = reinterpret_cast<const float*>(acc.data());
    for (std::size_t i = 0; i < floats; ++i) {
      float want = reinterpret_cast<const float*>(bufs[0].data())[i];
      for (int r = 1; r < ranks; ++r)
        want = want + reinterpret_cast<const float*>(bufs[r].data())[i];
      EXPECT_EQ(std::memcmp(&out[i], &want, sizeof want), 0) << "f32 " << i;
    }
    EXPECT_EQ(out[floats], 0.0f) << "the padding float stays zero";
    const float* kout = reinterpret_cast<const float*>(acc.data() + segs[1].word_offset);
    for (std::size_t i = 0; i < pairs; ++i) {
      double exact = 0, magnitude = 0;
      for (int r = 0; r < ranks; ++r) {
        const float* kp = reinterpret_cast<const float*>(bufs[r].data() + segs[1].word_offset);
        exact += static_cast<double>(kp[2 * i]) + static_cast<double>(kp[2 * i + 1]);
        magnitude += std::fabs(kp[2 * i]) + std::fabs(kp[2 * i + 1]);
      }
      const double got = static_cast<double>(kout[2 * i]) + static_cast<double>(kout[2 * i + 1]);
      // Kahan's bound, (2 eps + O(n eps^2)) sum |x|, whatever the number of addends.
      EXPECT_NEAR(got, exact, magnitude * 0x1p-22) << "kahan " << i;
    }
    for (std::size_t i = 0; i < counts; ++i) {
      std::uint64_t sum = 0, mx = 0, mn = std::numeric_limits<std::uint64_t>::max();
      for (int r = 0; r < ranks; ++r) {
        sum += bufs[r][segs[2].word_offset + i];
        mx = std::max(mx, bufs[r][segs[3].word_offset + i]);
        mn = std::min(mn, bufs[r][segs[4].word_offset + i]);
      }
      EXPECT_EQ(acc[segs[2].word_offset + i], sum);
      EXPECT_EQ(acc[segs[3].word_offset + i], mx);
      EXPECT_EQ(acc[segs[4].word_offset + i], mn);
    }
  }
}

// Huge plus tiny across ranks: a plain f32 sum loses the small ranks' contributions, the
// compensated pair keeps them exactly.
TEST(CombineWords, KahanPairsKeepWhatPlainF32Loses) {
  FusedBuffer b;
  b.add(ReduceOp::SumKahanF32, 1, "k");
  const std::vector<Segment> segs = b.segments();
  const auto word = [](float s, float c) {
    std::uint64_t w;
    const float f[2] = {s, c};
    std::memcpy(&w, f, sizeof w);
    return w;
  };
  std::uint64_t words[8] = {word(1e8f, 0.0f)};
  const std::uint64_t* src[8];
  for (int r = 0; r < 8; ++r) {
    if (r > 0) words[r] = word(1.0f, 0.25f);
    src[r] = &words[r];
  }
  std::uint64_t acc = 0;
  fold_words(segs, &acc, src, 8, 0, 1);
  float f[2];
  std::memcpy(f, &acc, sizeof f);
  EXPECT_EQ(static_cast<double>(f[0]) + static_cast<double>(f[1]), 1e8 + 7 * 1.25);
  float plain = 1e8f;
  for (int r = 1; r < 8; ++r)
    plain = plain + 1.25f;
  EXPECT_NE(static_cast<double>(plain), 1e8 + 7 * 1.25) << "the case must defeat plain f32";
}

TEST(CombineWords, TouchesOnlyItsChunk) {
  const std::vector<Segment> segs = layout_of(8, 4, 3);
  const std::size_t words = segs.back().word_offset + segs.back().words;
  std::vector<std::uint64_t> acc(words, 0x5555), other(words, 1);
  const std::uint64_t* src[2] = {acc.data() + 3, other.data() + 3};
  fold_words(segs, acc.data() + 3, src, 2, 3, 9);
  for (std::size_t w = 0; w < words; ++w) {
    if (w < 3 || w >= 9) {
      EXPECT_EQ(acc[w], 0x5555u) << "word " << w << " is outside the chunk";
    }
  }
}

TEST(CombineWords, OutMayNotBeALaterSource) {
  const std::vector<Segment> segs = layout_of(4, 0, 0);
  std::uint64_t a[2] = {}, b[2] = {}, c[2] = {};
  const std::uint64_t* src[3] = {a, b, c};
  EXPECT_THROW(fold_words(segs, c, src, 3, 0, 2), Error);
  EXPECT_NO_THROW(fold_words(segs, b, src, 3, 0, 2));
}

TEST(Fnv1a, KnownValues) {
  EXPECT_EQ(fnv1a("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a("foobar", 6), 0x85944171f73967e8ull);
}

}  // namespace
}  // namespace gradaccum::dist
