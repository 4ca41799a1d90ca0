// data::EpochOrder: epochs of batches, in file order or shuffled from the seed, with or without
// the short last batch, and a position that a checkpoint can seek back to.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "data/epoch_order.h"

namespace gradaccum::data {
namespace {

std::vector<std::int64_t> one_epoch(EpochOrder& o) {
  std::vector<std::int64_t> rows;
  for (std::int64_t b = 0; b < o.batches_per_epoch(); ++b) {
    const auto batch = o.next();
    rows.insert(rows.end(), batch.begin(), batch.end());
  }
  return rows;
}

TEST(EpochOrder, InOrderWithTheShortLastBatchKept) {
  EpochOrder o(EpochOrderOptions(10, 4));
  EXPECT_EQ(3, o.batches_per_epoch());
  EXPECT_EQ((std::vector<std::int64_t>{0, 1, 2, 3}), o.next());
  EXPECT_EQ((std::vector<std::int64_t>{4, 5, 6, 7}), o.next());
  EXPECT_EQ((std::vector<std::int64_t>{8, 9}), o.next());
  EXPECT_EQ(1, o.epoch());
  EXPECT_EQ((std::vector<std::int64_t>{0, 1, 2, 3}), o.next());
}

TEST(EpochOrder, DropLastLeavesOutTheShortBatch) {
  EpochOrder o(EpochOrderOptions(10, 4).drop_last(true));
  EXPECT_EQ(2, o.batches_per_epoch());
  o.next();
  EXPECT_EQ((std::vector<std::int64_t>{4, 5, 6, 7}), o.next());
  EXPECT_EQ(1, o.epoch());
  EXPECT_THROW(EpochOrder(EpochOrderOptions(3, 4).drop_last(true)), Error);
  EXPECT_THROW(EpochOrder(EpochOrderOptions(0, 4)), Error);
  EXPECT_THROW(EpochOrder(EpochOrderOptions(5, 0)), Error);
}

TEST(EpochOrder, ShuffledEpochsArePermutationsThatDifferAndRepeatFromTheSeed) {
  EpochOrder a(EpochOrderOptions(1000, 64).shuffle(true, 42));
  EpochOrder b(EpochOrderOptions(1000, 64).shuffle(true, 42));
  EpochOrder c(EpochOrderOptions(1000, 64).shuffle(true, 43));
  const auto a0 = one_epoch(a), a1 = one_epoch(a);
  std::vector<std::int64_t> all(1000);
  std::iota(all.begin(), all.end(), 0);
  for (const auto& e : {a0, a1}) {
    auto sorted = e;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(all, sorted);  // every row once per epoch
    EXPECT_NE(all, e);       // and not in file order
  }
  EXPECT_NE(a0, a1);
  EXPECT_EQ(a0, one_epoch(b));
  EXPECT_NE(a0, one_epoch(c));
}

TEST(EpochOrder, SeekingToAPositionGivesTheSameBatchesAsGettingThere) {
  EpochOrder a(EpochOrderOptions(100, 7).shuffle(true, 9));
  for (int i = 0; i < 37; ++i)
    a.next();
  const EpochOrder::Position p = a.position();
  EXPECT_EQ(2, p.epoch);
  EpochOrder b(EpochOrderOptions(100, 7).shuffle(true, 9));
  b.seek(p);
  for (int i = 0; i < 40; ++i)
    EXPECT_EQ(a.next(), b.next()) << i;
  EXPECT_THROW(b.seek({0, 15}), Error);
  EXPECT_THROW(b.seek({-1, 0}), Error);
}

}  // namespace
}  // namespace gradaccum::data
