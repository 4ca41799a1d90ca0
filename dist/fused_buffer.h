// The one buffer a distributed step reduces: every gradient sum, the Kahan compensations, the
// window's counts, flags and loss, laid end to end as segments of 8-byte words in host memory
// (page-locked when a device is present). Each segment says how its words combine across ranks.
//
// Word granularity lets a backend cut the buffer into contiguous chunks anywhere on a word
// boundary and combine each chunk on its own: a Kahan (sum, compensation) pair shares one word,
// so a pair is never split between two chunks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/host_buffer.h"

namespace gradaccum::dist {

enum class ReduceOp : std::uint8_t {
  SumF32,       // f32 values, two to a word: a + b rounded to f32
  SumKahanF32,  // (sum, compensation) f32 pairs, one to a word: a compensated sum of all four
  SumU64,       // u64 counts: exact (wraps only past 2^64)
  MaxU64,       // flags: any rank's raised flag raises it everywhere
  MinU64,
};
const char* reduce_op_name(ReduceOp op);

constexpr std::size_t kWordBytes = 8;

struct Segment {
  ReduceOp op = ReduceOp::SumF32;
  std::size_t elements = 0;     // values (SumF32), pairs (SumKahanF32) or u64 words
  std::size_t word_offset = 0;  // where it starts in the buffer
  std::size_t words = 0;
  std::string name;
};

class FusedBuffer {
 public:
  // Adds a segment and returns its index. Only before allocate().
  std::size_t add(ReduceOp op, std::size_t elements, std::string name);
  // Allocates the (zeroed) words once the layout is complete.
  void allocate();

  const std::vector<Segment>& segments() const { return segments_; }
  std::size_t words() const { return words_; }
  std::size_t bytes() const { return words_ * kWordBytes; }
  bool allocated() const { return memory_.data() != nullptr || words_ == 0; }

  std::uint64_t* data() { return static_cast<std::uint64_t*>(memory_.data()); }
  const std::uint64_t* data() const { return static_cast<const std::uint64_t*>(memory_.data()); }
  // A segment's first element: floats for SumF32 (contiguous) and SumKahanF32 (sum, comp, sum,
  // comp, ...), words for the u64 ops. Throws on a segment of the other kind.
  float* f32(std::size_t segment);
  const float* f32(std::size_t segment) const;
  std::uint64_t* u64(std::size_t segment);
  const std::uint64_t* u64(std::size_t segment) const;

  // A fingerprint of the layout (ops and sizes, not names or values): ranks whose buffers have
  // different fingerprints cannot be reduced together.
  std::uint64_t layout_hash() const;

 private:
  std::vector<Segment> segments_;
  std::size_t words_ = 0;
  HostBuffer memory_;
};

// The words [begin, end) of n buffers laid out as `segments`, combined in rank order into out:
// out = ((sources[0] op sources[1]) op sources[2]) ... word by word (every pointer at word
// `begin`; out may be sources[0] or sources[1], not a later one). Every rank folding the same words
// in the same order gets the same bits, whatever the backend did to bring them together.
void fold_words(const std::vector<Segment>& segments, std::uint64_t* out,
                const std::uint64_t* const* sources, int n, std::size_t begin, std::size_t end);

// Rank r's chunk of a buffer of `words` cut into `ranks` contiguous pieces, as even as possible:
// [chunk_begin(r), chunk_begin(r + 1)).
std::size_t chunk_begin(std::size_t words, int ranks, int r);

// FNV-1a over bytes (64-bit), continuing from `seed`.
std::uint64_t fnv1a(const void* data, std::size_t bytes,
                    std::uint64_t seed = 0xcbf29ce484222325ull);

}  // namespace gradaccum::dist
