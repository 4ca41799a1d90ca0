#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/file_bytes.h"

namespace gradaccum::data {
namespace {

// Throws Error with "IDX file '<name>': <problem>".
#define GA_IDX_FAIL(name, problem) GA_FAIL("IDX file '" << (name) << "': " << problem)

std::string hex_bytes(const std::uint8_t* p, std::size_t n) {
  std::string out;
  char b[4];
  for (std::size_t i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, i ? " %02x" : "%02x", p[i]);
    out += b;
  }
  return out;
}

bool known_type(std::uint8_t t) {
  return t == 0x08 || t == 0x09 || t == 0x0B || t == 0x0C || t == 0x0D || t == 0x0E;
}

// The file's bytes in order: the memory itself, or a gzip stream inflated as it is read.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to n bytes into dst; fewer only at the end of the data.
  virtual std::size_t read(std::uint8_t* dst, std::size_t n) = 0;
  // Whether anything is left after what was read.
  virtual bool more() = 0;
  // The most element bytes the source can hold (a lying header is refused before allocating).
  virtual std::uint64_t capacity() const = 0;
};

class PlainSource final : public ByteSource {
 public:
  PlainSource(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    const std::size_t k = std::min(n, size_ - at_);
    if (k > 0) std::memcpy(dst, data_ + at_, k);
    at_ += k;
    return k;
  }
  bool more() override { return at_ < size_; }
  std::uint64_t capacity() const override { return size_ - at_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_, at_ = 0;
};

class GzipSource final : public ByteSource {
 public:
  GzipSource(const std::uint8_t* data, std::size_t size, const std::string& name)
      : data_(data), size_(size), name_(name) {
    std::memset(&z_, 0, sizeof z_);
    // 16 + MAX_WBITS: a gzip header and trailer (CRC and length checked by zlib).
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) GA_IDX_FAIL(name_, "zlib could not start");
  }
  ~GzipSource() override { inflateEnd(&z_); }
  GzipSource(const GzipSource&) = delete;
  GzipSource& operator=(const GzipSource&) = delete;

  std::size_t read(std::uint8_t* dst, std::size_t n) override {
    std::size_t done = 0;
    while (done < n && !ended_) {
      if (z_.avail_in == 0) feed();
      const std::size_t want = std::min<std::size_t>(n - done, UINT_MAX);
      z_.next_out = dst + done;
      z_.avail_out = static_cast<uInt>(want);
      const int rc = inflate(&z_, Z_NO_FLUSH);
      done += want - z_.avail_out;
      if (rc == Z_STREAM_END) {
        ended_ = true;
      } else if (rc == Z_BUF_ERROR && z_.avail_in == 0 && fed_ == size_) {
        GA_IDX_FAIL(name_,
                    "truncated gzip stream: the compressed data ends before the end of "
                    "the stream ("
                        << size_ << " bytes)");
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        GA_IDX_FAIL(name_, "corrupted gzip stream (zlib: "
                               << (z_.msg != nullptr ? z_.msg : zError(rc)) << ")");
      }
    }
    return done;
  }

  bool more() override {
    if (!ended_) {
      std::uint8_t b;
      if (read(&b, 1) == 1) return true;
    }
    // Anything after the gzip member (a second member, or garbage) is refused too.
    return z_.avail_in > 0 || fed_ < size_;
  }

  // Deflate expands at most about 1032:1.
  std::uint64_t capacity() const override { return 1100 * static_cast<std::uint64_t>(size_) + 64; }

 private:
  void feed() {
    const std::size_t k = std::min<std::size_t>(size_ - fed_, UINT_MAX);
    z_.next_in = const_cast<Bytef*>(data_ + fed_);  // zlib does not write through next_in
    z_.avail_in = static_cast<uInt>(k);
    fed_ += k;
  }

  const std::uint8_t* data_;
  std::size_t size_, fed_ = 0;
  std::string name_;
  z_stream z_;
  bool ended_ = false;
};

IdxArray parse(ByteSource& src, std::size_t file_size, const std::string& name) {
  std::uint8_t magic[4];
  if (src.read(magic, 4) < 4) {
    GA_IDX_FAIL(name,
                "truncated: expected a 4-byte magic (00 00 <type> <dimensions>), the data "
                "has fewer bytes");
  }
  if (magic[0] != 0 || magic[1] != 0) {
    GA_IDX_FAIL(name, "not an IDX file: expected the magic 00 00 <type> <dimensions>, got "
                          << hex_bytes(magic, 4));
  }
  if (!known_type(magic[2])) {
    GA_IDX_FAIL(name, "unknown element type 0x" << hex_bytes(magic + 2, 1)
                                                << ": expected 08 (u8), 09 (i8), 0b (i16), 0c "
                                                   "(i32), 0d (f32) or 0e (f64)");
  }
  IdxArray a;
  a.type = static_cast<IdxType>(magic[2]);
  const std::size_t nd = magic[3];
  if (nd < 1 || nd > kIdxMaxDims) {
    GA_IDX_FAIL(name, nd << " dimensions: expected 1 to " << kIdxMaxDims);
  }
  std::uint8_t raw[4 * kIdxMaxDims];
  if (src.read(raw, 4 * nd) < 4 * nd) {
    GA_IDX_FAIL(name, "truncated: the header needs " << 4 * nd << " bytes for its " << nd
                                                     << " dimensions after the magic");
  }
  const std::uint64_t item = idx_type_size(a.type);
  bool empty = false;
  for (std::size_t i = 0; i < nd; ++i) {
    const std::uint64_t d = (std::uint64_t{raw[4 * i]} << 24) |
                            (std::uint64_t{raw[4 * i + 1]} << 16) |
                            (std::uint64_t{raw[4 * i + 2]} << 8) | raw[4 * i + 3];
    a.dims.push_back(static_cast<std::int64_t>(d));
    empty = empty || d == 0;
  }
  // Stops once past the limit: both factors are then below 2^33, so nothing overflows.
  std::uint64_t total = empty ? 0 : item;
  for (std::size_t i = 0; i < nd && total <= kIdxMaxBytes; ++i)
    total *= static_cast<std::uint64_t>(a.dims[i]);
  if (total > kIdxMaxBytes) {
    GA_IDX_FAIL(name, "dimensions " << idx_dims_text(a.dims) << " of " << idx_type_name(a.type)
                                    << " are more than " << kIdxMaxBytes
                                    << " bytes: expected a smaller array");
  }
  if (total > src.capacity()) {
    GA_IDX_FAIL(name, "truncated: dimensions " << idx_dims_text(a.dims) << " of "
                                               << idx_type_name(a.type) << " need " << total
                                               << " bytes of elements, the file (" << file_size
                                               << " bytes) cannot hold them");
  }
  a.bytes.resize(static_cast<std::size_t>(total));
  const std::size_t got = src.read(a.bytes.data(), a.bytes.size());
  if (got < a.bytes.size()) {
    GA_IDX_FAIL(name, "truncated: dimensions " << idx_dims_text(a.dims) << " of "
                                               << idx_type_name(a.type) << " need " << total
                                               << " bytes of elements, the data has " << got);
  }
  if (src.more()) {
    GA_IDX_FAIL(name, "data past the elements: dimensions " << idx_dims_text(a.dims) << " of "
                                                            << idx_type_name(a.type) << " need "
                                                            << total << " bytes, there are more");
  }
  // Big-endian in the file: reversed in place on a little-endian host.
  const std::uint16_t probe = 1;
  const bool little = *reinterpret_cast<const std::uint8_t*>(&probe) == 1;
  if (little && item > 1) {
    for (std::size_t i = 0; i < a.bytes.size(); i += item)
      std::reverse(a.bytes.begin() + static_cast<std::ptrdiff_t>(i),
                   a.bytes.begin() + static_cast<std::ptrdiff_t>(i + item));
  }
  return a;
}

}  // namespace

std::string idx_dims_text(const std::vector<std::int64_t>& dims) {
  std::ostringstream s;
  s << '[';
  for (std::size_t i = 0; i < dims.size(); ++i)
    s << (i ? ", " : "") << dims[i];
  s << ']';
  return s.str();
}

const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::U8:
      return "u8";
    case IdxType::I8:
      return "i8";
    case IdxType::I16:
      return "i16";
    case IdxType::I32:
      return "i32";
    case IdxType::F32:
      return "f32";
    case IdxType::F64:
      return "f64";
  }
  return "?";
}

std::size_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::U8:
    case IdxType::I8:
      return 1;
    case IdxType::I16:
      return 2;
    case IdxType::I32:
    case IdxType::F32:
      return 4;
    case IdxType::F64:
      return 8;
  }
  return 1;
}

std::int64_t IdxArray::elements() const {
  // A zero dimension makes the array empty whatever the others (which may then be huge: their
  // product is bounded by the parser only when every dimension is non-zero).
  for (std::int64_t d : dims)
    if (d == 0) return 0;
  std::int64_t n = 1;
  for (std::int64_t d : dims)
    n *= d;
  return n;
}

IdxArray parse_idx(const std::uint8_t* data, std::size_t size, const std::string& name) {
  GA_CHECK(data != nullptr || size == 0, "parse_idx: null data for " << size << " bytes");
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    GzipSource src(data, size, name);
    return parse(src, size, name);
  }
  PlainSource src(data, size);
  return parse(src, size, name);
}

IdxArray load_idx(const std::string& path) {
  const std::string bytes = read_file_bytes(path, kIdxMaxBytes + 4 + 4 * kIdxMaxDims, "IDX file");
  return parse_idx(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), path);
}

}  // namespace gradaccum::data
