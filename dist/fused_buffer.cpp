#include "dist/fused_buffer.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/error.h"
#include "kernels/gemm_problem.h"  // kahan_add: the same compensated step as the window's

namespace gradaccum::dist {
namespace {

std::size_t words_for(ReduceOp op, std::size_t elements) {
  return op == ReduceOp::SumF32 ? (elements + 1) / 2 : elements;
}

bool is_f32(ReduceOp op) {
  return op == ReduceOp::SumF32 || op == ReduceOp::SumKahanF32;
}

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::SumF32:
      return "sum-f32";
    case ReduceOp::SumKahanF32:
      return "sum-kahan-f32";
    case ReduceOp::SumU64:
      return "sum-u64";
    case ReduceOp::MaxU64:
      return "max-u64";
    case ReduceOp::MinU64:
      return "min-u64";
  }
  return "unknown";
}

std::size_t FusedBuffer::add(ReduceOp op, std::size_t elements, std::string name) {
  GA_CHECK(memory_.data() == nullptr,
           "FusedBuffer::add: segment '" << name << "' added after allocate()");
  Segment s;
  s.op = op;
  s.elements = elements;
  s.word_offset = words_;
  s.words = words_for(op, elements);
  s.name = std::move(name);
  words_ += s.words;
  segments_.push_back(std::move(s));
  return segments_.size() - 1;
}

void FusedBuffer::allocate() {
  GA_CHECK(memory_.data() == nullptr, "FusedBuffer::allocate: already allocated");
  memory_ = HostBuffer(bytes());
}

float* FusedBuffer::f32(std::size_t segment) {
  return const_cast<float*>(std::as_const(*this).f32(segment));
}

const float* FusedBuffer::f32(std::size_t segment) const {
  GA_CHECK(segment < segments_.size() && is_f32(segments_[segment].op),
           "FusedBuffer::f32: segment " << segment << " is not an f32 segment");
  GA_CHECK(allocated(), "FusedBuffer::f32: not allocated");
  return reinterpret_cast<const float*>(data() + segments_[segment].word_offset);
}

std::uint64_t* FusedBuffer::u64(std::size_t segment) {
  return const_cast<std::uint64_t*>(std::as_const(*this).u64(segment));
}

const std::uint64_t* FusedBuffer::u64(std::size_t segment) const {
  GA_CHECK(segment < segments_.size() && !is_f32(segments_[segment].op),
           "FusedBuffer::u64: segment " << segment << " is not a u64 segment");
  GA_CHECK(allocated(), "FusedBuffer::u64: not allocated");
  return data() + segments_[segment].word_offset;
}

std::uint64_t FusedBuffer::layout_hash() const {
  std::uint64_t h = fnv1a(&words_, sizeof words_);
  for (const Segment& s : segments_) {
    const std::uint64_t fields[3] = {static_cast<std::uint64_t>(s.op), s.elements, s.word_offset};
    h = fnv1a(fields, sizeof fields, h);
  }
  return h;
}

void combine_words(const std::vector<Segment>& segments, std::uint64_t* acc,
                   const std::uint64_t* other, std::size_t begin, std::size_t end) {
  for (const Segment& s : segments) {
    // This segment's words in the chunk, as indices into acc and other.
    const std::size_t lo = std::max(begin, s.word_offset) - begin;
    const std::size_t hi = std::min(end, s.word_offset + s.words);
    if (lo + begin >= hi) continue;
    const std::size_t n = hi - begin;
    switch (s.op) {
      case ReduceOp::SumF32: {
        // Word by word through memcpy: the two floats of a word, in order (a padding float at
        // the end of an odd segment is 0 + 0).
        for (std::size_t i = lo; i < n; ++i) {
          float a[2], b[2];
          std::memcpy(a, acc + i, sizeof a);
          std::memcpy(b, other + i, sizeof b);
          a[0] = a[0] + b[0];
          a[1] = a[1] + b[1];
          std::memcpy(acc + i, a, sizeof a);
        }
        break;
      }
      case ReduceOp::SumKahanF32: {
        // The pair (sum, comp) stands for sum + comp: both parts of the other rank's pair go
        // into the compensated sum, the larger first.
        for (std::size_t i = lo; i < n; ++i) {
          float a[2], b[2];
          std::memcpy(a, acc + i, sizeof a);
          std::memcpy(b, other + i, sizeof b);
          kahan_add(a[0], a[1], b[0]);
          kahan_add(a[0], a[1], b[1]);
          std::memcpy(acc + i, a, sizeof a);
        }
        break;
      }
      case ReduceOp::SumU64:
        for (std::size_t i = lo; i < n; ++i)
          acc[i] += other[i];
        break;
      case ReduceOp::MaxU64:
        for (std::size_t i = lo; i < n; ++i)
          acc[i] = std::max(acc[i], other[i]);
        break;
      case ReduceOp::MinU64:
        for (std::size_t i = lo; i < n; ++i)
          acc[i] = std::min(acc[i], other[i]);
        break;
    }
  }
}

std::size_t chunk_begin(std::size_t words, int ranks, int r) {
  GA_CHECK(ranks > 0 && r >= 0 && r <= ranks,
           "chunk_begin: rank " << r << " of " << ranks << " ranks");
  const auto n = static_cast<std::size_t>(ranks);
  const auto i = static_cast<std::size_t>(r);
  return words / n * i + std::min(i, words % n);
}

std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t seed) {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t h = seed;
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace gradaccum::dist
