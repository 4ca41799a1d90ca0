#include "data/epoch_order.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/random.h"

namespace gradaccum::data {

EpochOrder::EpochOrder(const EpochOrderOptions& options) : o_(options) {
  GA_CHECK(o_.rows_ > 0, "EpochOrder: " << o_.rows_ << " rows; expected at least one");
  GA_CHECK(o_.batch_ > 0, "EpochOrder: a batch of " << o_.batch_ << "; expected at least one row");
  GA_CHECK(!o_.drop_last_ || o_.rows_ >= o_.batch_,
           "EpochOrder: " << o_.rows_ << " rows make no full batch of " << o_.batch_
                          << " with drop_last: expected at least one batch's rows");
  batches_per_epoch_ =
      o_.drop_last_ ? o_.rows_ / o_.batch_ : (o_.rows_ + o_.batch_ - 1) / o_.batch_;
  make_permutation();
}

void EpochOrder::make_permutation() {
  perm_.resize(static_cast<std::size_t>(o_.rows_));
  std::iota(perm_.begin(), perm_.end(), std::int64_t{0});
  if (!o_.shuffle_) return;
  CounterRng rng(o_.seed_ ^ 0x5eed5eed5eedull, static_cast<std::uint64_t>(epoch_) << 40);
  for (std::size_t i = perm_.size() - 1; i > 0; --i) {
    // Lemire's multiply-shift: j uniform in [0, i] (bias below 2^-32 for any dataset here).
    const std::uint64_t r = rng.next() >> 32;
    const auto j = static_cast<std::size_t>((r * (static_cast<std::uint64_t>(i) + 1)) >> 32);
    std::swap(perm_[i], perm_[j]);
  }
}

std::vector<std::int64_t> EpochOrder::next() {
  const std::int64_t begin = batch_ * o_.batch_;
  const std::int64_t end = std::min(o_.rows_, begin + o_.batch_);
  std::vector<std::int64_t> rows(perm_.begin() + begin, perm_.begin() + end);
  if (++batch_ == batches_per_epoch_) {
    batch_ = 0;
    ++epoch_;
    make_permutation();
  }
  return rows;
}

void EpochOrder::seek(const Position& p) {
  GA_CHECK(p.epoch >= 0 && p.batch >= 0 && p.batch < batches_per_epoch_,
           "EpochOrder::seek: epoch " << p.epoch << ", batch " << p.batch
                                      << "; expected a batch in [0, " << batches_per_epoch_ << ")");
  epoch_ = p.epoch;
  batch_ = p.batch;
  make_permutation();
}

}  // namespace gradaccum::data
