// IDX files (LeCun's format, MNIST and Fashion-MNIST): a 4-byte magic (0, 0, the element type,
// the number of dimensions), each dimension as a big-endian u32, then the elements, big-endian,
// in C order. Read plain or gzip-compressed (zlib), as Debian ships them.
// The reader is an input boundary like the .npy one: every size is checked against the bytes
// that really exist before anything is allocated, and every problem is an Error naming the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gradaccum::data {

enum class IdxType : std::uint8_t {
  U8 = 0x08,
  I8 = 0x09,
  I16 = 0x0B,
  I32 = 0x0C,
  F32 = 0x0D,
  F64 = 0x0E
};
const char* idx_type_name(IdxType t);
// "[60000, 28, 28]": the dimensions as read, whatever their product (core's Shape refuses one
// that overflows, and a malformed header's may).
std::string idx_dims_text(const std::vector<std::int64_t>& dims);
std::size_t idx_type_size(IdxType t);

struct IdxArray {
  IdxType type = IdxType::U8;
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> bytes;  // the elements, converted to host byte order
  std::int64_t elements() const;
};

// At most this many dimensions, and this many bytes of elements (a 4 GiB dataset file).
constexpr std::size_t kIdxMaxDims = 8;
constexpr std::uint64_t kIdxMaxBytes = std::uint64_t{1} << 32;

// Parses an IDX image in memory, gzip-compressed (it starts with 1f 8b) or not; `name` is used
// in error messages.
IdxArray parse_idx(const std::uint8_t* data, std::size_t size, const std::string& name);
// Reads and parses a file.
IdxArray load_idx(const std::string& path);

}  // namespace gradaccum::data
