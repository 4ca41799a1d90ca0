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

namespace {

// One pass over the words [a, b) of a segment: out[i] = x[i] op y[i], for every i (out may be x
// or y: each word is read before it is written). Plain loops over arrays, so that the compiler
// vectorises the f32 sums.
void fold_pass(ReduceOp op, std::uint64_t* out, const std::uint64_t* x, const std::uint64_t* y,
               std::size_t a, std::size_t b) {
  switch (op) {
    case ReduceOp::SumF32: {  // two floats a word (a padding float is 0 + 0)
      auto* o = reinterpret_cast<float*>(out + a);
      const auto* u = reinterpret_cast<const float*>(x + a);
      const auto* v = reinterpret_cast<const float*>(y + a);
      for (std::size_t i = 0; i < 2 * (b - a); ++i)
        o[i] = u[i] + v[i];
      break;
    }
    case ReduceOp::SumKahanF32:  // (sum, comp) stands for sum + comp: both parts of y go into
                                 // the compensated sum, the larger first
      for (std::size_t i = a; i < b; ++i) {
        float p[2], q[2];
        std::memcpy(p, x + i, sizeof p);
        std::memcpy(q, y + i, sizeof q);
        kahan_add(p[0], p[1], q[0]);
        kahan_add(p[0], p[1], q[1]);
        std::memcpy(out + i, p, sizeof p);
      }
      break;
    case ReduceOp::SumU64:
      for (std::size_t i = a; i < b; ++i)
        out[i] = x[i] + y[i];
      break;
    case ReduceOp::MaxU64:
      for (std::size_t i = a; i < b; ++i)
        out[i] = std::max(x[i], y[i]);
      break;
    case ReduceOp::MinU64:
      for (std::size_t i = a; i < b; ++i)
        out[i] = std::min(x[i], y[i]);
      break;
  }
}

}  // namespace

void fold_words(const std::vector<Segment>& segments, std::uint64_t* out,
                const std::uint64_t* const* sources, int n, std::size_t begin, std::size_t end) {
  GA_CHECK(n >= 1, "fold_words: no source");
  for (int r = 2; r < n; ++r) {
    GA_CHECK(sources[r] != out, "fold_words: out may be source 0 or 1, not source " << r);
  }
  if (n == 1) {
    if (out != sources[0]) std::memcpy(out, sources[0], (end - begin) * kWordBytes);
    return;
  }
  for (const Segment& s : segments) {
    // This segment's words in the chunk, as indices into out and the sources.
    const std::size_t lo = std::max(begin, s.word_offset);
    const std::size_t hi = std::min(end, s.word_offset + s.words);
    if (lo >= hi) continue;
    // Rank order, one pass per rank: ((s0 op s1) op s2) ... element by element.
    fold_pass(s.op, out, sources[0], sources[1], lo - begin, hi - begin);
    for (int r = 2; r < n; ++r)
      fold_pass(s.op, out, out, sources[r], lo - begin, hi - begin);
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
