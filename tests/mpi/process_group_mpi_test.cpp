// ProcessGroup::allreduce_start: word ranges reduced in flight, in any cut, give the bytes of the
// one blocking allreduce of the whole buffer (each word is folded in rank order either way).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/random.h"
#include "dist/fused_buffer.h"
#include "mpi_world.h"

namespace gradaccum::test {
namespace {

using dist::FusedBuffer;
using dist::ReduceOp;

// Every op, with this rank's own values (floats of mixed signs and magnitudes, counts, flags).
void fill(FusedBuffer& b, int rank) {
  b.add(ReduceOp::SumU64, 3, "counts");
  b.add(ReduceOp::MaxU64, 2, "flags");
  b.add(ReduceOp::MinU64, 2, "tracker");
  b.add(ReduceOp::SumKahanF32, 5, "loss");
  b.add(ReduceOp::SumF32, 37, "gradient a");
  b.add(ReduceOp::SumF32, 1000, "gradient b");
  b.allocate();
  const auto& segs = b.segments();
  const std::vector<float> v = uniform({2 * 1037 + 10}, -3.0f, 3.0f, 70 + rank).to_vector();
  std::size_t k = 0;
  for (std::size_t s = 0; s < segs.size(); ++s) {
    if (segs[s].op == ReduceOp::SumF32 || segs[s].op == ReduceOp::SumKahanF32) {
      const std::size_t floats =
          segs[s].op == ReduceOp::SumF32 ? segs[s].elements : 2 * segs[s].elements;
      for (std::size_t i = 0; i < floats; ++i)
        b.f32(s)[i] = v[k++] * (i % 7 == 0 ? 1e6f : 1.0f);
    } else {
      for (std::size_t i = 0; i < segs[s].elements; ++i)
        b.u64(s)[i] = static_cast<std::uint64_t>(rank * 1000 + 17 * i + s);
    }
  }
}

TEST(ProcessGroupMpi, StartedRangesGiveTheBytesOfOneAllreduce) {
  const int rank = world().rank();
  FusedBuffer whole;
  fill(whole, rank);
  world().allreduce(whole);
  const std::size_t w = whole.words();
  // Cuts at odd places, started last range first, moved on by test() before waiting.
  for (const std::vector<std::size_t>& cuts :
       {std::vector<std::size_t>{0, w}, {0, 1, w}, {0, 5, 9, 500, w - 1, w}}) {
    FusedBuffer parts;
    fill(parts, rank);
    std::vector<std::unique_ptr<dist::PendingReduction>> pending;
    for (std::size_t i = cuts.size() - 1; i > 0; --i) {
      pending.push_back(world().allreduce_start(parts, cuts[i - 1], cuts[i]));
      for (auto& p : pending)
        p->test();
    }
    for (auto& p : pending)
      p->wait();
    EXPECT_TRUE(pending.back()->test()) << "a completed reduction stays complete";
    EXPECT_EQ(std::memcmp(parts.data(), whole.data(), whole.bytes()), 0)
        << cuts.size() - 1 << " ranges";
  }
}

TEST(ProcessGroupMpi, ARangeOutsideTheBufferIsAnError) {
  FusedBuffer b;
  fill(b, world().rank());
  try {
    world().allreduce_start(b, 3, b.words() + 1);
    ADD_FAILURE() << "a range past the buffer must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected a range inside it"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(world().allreduce_start(b, 4, 4)->test()) << "an empty range is complete at once";
}

}  // namespace
}  // namespace gradaccum::test
