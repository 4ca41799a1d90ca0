// The order in which a training run visits a dataset's rows: epochs of batches, each epoch in
// file order or shuffled. The shuffle of epoch e is a pure function of (seed, e), so the whole
// order is known from (seed, epoch, batch in the epoch): that is all a checkpoint keeps of it.
#pragma once

#include <cstdint>
#include <vector>

namespace gradaccum::data {

struct EpochOrderOptions {
  EpochOrderOptions(std::int64_t rows, std::int64_t batch) : rows_(rows), batch_(batch) {}
  // Shuffle every epoch (Fisher-Yates from CounterRng(seed, epoch)); off: file order.
  EpochOrderOptions& shuffle(bool on, std::uint64_t seed) {
    shuffle_ = on;
    seed_ = seed;
    return *this;
  }
  // Leave out an epoch's last batch when it is short (PyTorch DataLoader's drop_last); off:
  // it is a smaller step of its own.
  EpochOrderOptions& drop_last(bool on) {
    drop_last_ = on;
    return *this;
  }
  std::int64_t rows_, batch_;
  bool shuffle_ = false, drop_last_ = false;
  std::uint64_t seed_ = 0;
};

class EpochOrder {
 public:
  // Throws when there are no rows, no batch, or (drop_last) fewer rows than one batch.
  explicit EpochOrder(const EpochOrderOptions& options);

  std::int64_t batches_per_epoch() const { return batches_per_epoch_; }
  std::int64_t epoch() const { return epoch_; }
  std::int64_t batch_in_epoch() const { return batch_; }

  // The rows of the next batch (its size: the batch, or the short last one), then moves on.
  std::vector<std::int64_t> next();

  // Where the order stands, for a checkpoint; seek() goes back there (the permutation is
  // recomputed from the seed).
  struct Position {
    std::int64_t epoch = 0, batch = 0;
  };
  Position position() const { return {epoch_, batch_}; }
  void seek(const Position& p);

 private:
  void make_permutation();

  EpochOrderOptions o_;
  std::int64_t batches_per_epoch_ = 0;
  std::int64_t epoch_ = 0, batch_ = 0;
  std::vector<std::int64_t> perm_;  // this epoch's order of the rows
};

}  // namespace gradaccum::data
