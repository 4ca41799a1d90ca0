// .npy reading and writing. The format (NumPy's numpy/lib/format.py):
//   magic "\x93NUMPY", major and minor version bytes, the header length (2 bytes little-endian
//   in version 1.0, 4 bytes in 2.0 and 3.0), then the header: a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces and ended
//   by '\n' so that the data starts at a multiple of 64 bytes, then the raw elements.
// The reader is an input boundary: it checks every size against the bytes that really exist
// before reading or allocating, and reports every problem as an Error naming the file.
#include "core/npy.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "core/error.h"

namespace gradaccum {
namespace {

#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr bool kBigEndianHost = true;
#else
constexpr bool kBigEndianHost = false;
#endif

constexpr char kMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t kMagicSize = sizeof kMagic;
constexpr std::size_t kLongestPrefix = kMagicSize + 2 + 4;  // magic, version, 4-byte length
constexpr std::size_t kAlignment = 64;

// Throws Error with "npy file '<name>': <problem>".
#define GA_NPY_FAIL(name, problem) GA_FAIL("npy file '" << (name) << "': " << problem)

// Text from the file, made safe to print: non-printable bytes as \xNN, at most 40 characters.
std::string printable(const char* s, std::size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  const std::size_t shown = n < 40 ? n : 40;
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  if (shown < n) out += "...";
  return out;
}
std::string printable(const std::string& s) {
  return printable(s.data(), s.size());
}

// ---- the file prefix ---------------------------------------------------------------------------

struct Prefix {
  int major = 0;
  std::size_t prefix_size = 0;  // magic + version + length field
  std::size_t header_size = 0;  // the dict text, padding and '\n'
};

// Reads the prefix from the first `n` bytes of a file of `file_size` bytes (n == the whole file
// or at least kLongestPrefix).
Prefix parse_prefix(const std::uint8_t* p, std::size_t n, std::size_t file_size,
                    const std::string& name) {
  const std::size_t magic_avail = n < kMagicSize ? n : kMagicSize;
  if (std::memcmp(p, kMagic, magic_avail) != 0) {
    GA_NPY_FAIL(name, "not a .npy file (bad magic: it must start with \"\\x93NUMPY\", found \""
                          << printable(reinterpret_cast<const char*>(p), magic_avail) << "\")");
  }
  if (n < kMagicSize + 2) {
    GA_NPY_FAIL(name, "file is truncated: " << n << " bytes, too short for the .npy prefix");
  }
  Prefix out;
  out.major = p[6];
  const int minor = p[7];
  if (out.major < 1 || out.major > 3 || minor != 0) {
    GA_NPY_FAIL(name, "unsupported .npy format version " << out.major << "." << minor
                                                         << " (supported: 1.0, 2.0, 3.0)");
  }
  const std::size_t length_bytes = out.major == 1 ? 2 : 4;
  out.prefix_size = kMagicSize + 2 + length_bytes;
  if (n < out.prefix_size) {
    GA_NPY_FAIL(name, "file is truncated: " << n << " bytes, too short for the version "
                                            << out.major << ".0 prefix of " << out.prefix_size
                                            << " bytes");
  }
  std::uint32_t len = 0;
  for (std::size_t i = 0; i < length_bytes; ++i) {
    len |= static_cast<std::uint32_t>(p[kMagicSize + 2 + i]) << (8 * i);
  }
  out.header_size = len;
  if (out.header_size > file_size - out.prefix_size) {
    GA_NPY_FAIL(name, "header length " << out.header_size << " runs past the end of the file ("
                                       << file_size << " bytes, header starts at byte "
                                       << out.prefix_size << ")");
  }
  return out;
}

// ---- the header dict ---------------------------------------------------------------------------

// A recursive-descent parser for the subset of Python literals a .npy header uses:
//   dict  := '{' [ item (',' item)* [','] ] '}'      item := string ':' value
//   value := string | 'True' | 'False' | tuple        tuple := '(' [ int (',' int)* [','] ] ')'
// where a 1-element tuple needs its trailing comma, as in Python.
class HeaderParser {
 public:
  HeaderParser(const char* text, std::size_t size, const std::string& name)
      : s_(text), n_(size), name_(name) {}

  struct Result {
    bool have_descr = false, have_fortran = false, have_shape = false;
    std::string descr;
    bool fortran_order = false;
    std::int64_t dims[Shape::kMaxRank] = {};
    std::size_t rank = 0;  // may exceed kMaxRank: then only the first dims are kept
  };

  Result parse() {
    Result r;
    skip_space();
    expect('{', "the header must be a dict starting with '{'");
    skip_space();
    while (!at('}')) {
      const std::size_t key_pos = i_;
      const std::string key = parse_string("a quoted key");
      skip_space();
      expect(':', "expected ':' after the key");
      skip_space();
      if (key == "descr") {
        if (r.have_descr) duplicate(key);
        r.have_descr = true;
        if (!at('\'') && !at('"')) {
          GA_NPY_FAIL(name_, "malformed header: 'descr' must be a string such as '<f4' at byte "
                                 << i_ << " (structured dtypes are not supported)");
        }
        r.descr = parse_string("the 'descr' string");
      } else if (key == "fortran_order") {
        if (r.have_fortran) duplicate(key);
        r.have_fortran = true;
        r.fortran_order = parse_bool();
      } else if (key == "shape") {
        if (r.have_shape) duplicate(key);
        r.have_shape = true;
        parse_shape(r);
      } else {
        GA_NPY_FAIL(name_, "malformed header: unexpected key '"
                               << printable(key) << "' at byte " << key_pos
                               << " (expected only 'descr', 'fortran_order' and 'shape')");
      }
      skip_space();
      if (at(',')) {
        ++i_;
        skip_space();
      } else if (!at('}')) {
        fail_here("expected ',' or '}' after a value");
      }
    }
    ++i_;  // the '}'
    skip_space();
    if (i_ != n_) fail_here("unexpected text after the header dict");
    if (!r.have_descr) missing("descr");
    if (!r.have_fortran) missing("fortran_order");
    if (!r.have_shape) missing("shape");
    return r;
  }

 private:
  bool at(char c) const { return i_ < n_ && s_[i_] == c; }

  void skip_space() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }

  [[noreturn]] void fail_here(const char* what) const {
    if (i_ >= n_) {
      GA_NPY_FAIL(name_, "malformed header: " << what << ", but the header ends at byte " << n_
                                              << " (unterminated)");
    }
    GA_NPY_FAIL(name_, "malformed header: " << what << ", found '" << printable(s_ + i_, 1)
                                            << "' at byte " << i_);
  }
  [[noreturn]] void duplicate(const std::string& key) const {
    GA_NPY_FAIL(name_, "malformed header: key '" << key << "' appears twice");
  }
  [[noreturn]] void missing(const char* key) const {
    GA_NPY_FAIL(name_, "malformed header: the key '" << key << "' is missing");
  }

  void expect(char c, const char* what) {
    if (!at(c)) fail_here(what);
    ++i_;
  }

  // A single- or double-quoted string. As in Python, \\, \' and \" are escapes and any other
  // backslash stands for itself (the other escapes never occur in a valid header).
  std::string parse_string(const char* what) {
    if (!at('\'') && !at('"')) fail_here((std::string("expected ") + what).c_str());
    const char quote = s_[i_++];
    const std::size_t start = i_;
    std::string out;
    while (i_ < n_ && s_[i_] != quote && s_[i_] != '\n') {  // a literal cannot span lines
      if (s_[i_] == '\\' && i_ + 1 < n_ &&
          (s_[i_ + 1] == '\\' || s_[i_ + 1] == '\'' || s_[i_ + 1] == '"')) {
        ++i_;
      }
      out += s_[i_++];
    }
    if (!at(quote)) {
      GA_NPY_FAIL(name_, "malformed header: unterminated string starting at byte " << start - 1);
    }
    ++i_;
    return out;
  }

  bool match_word(const char* word) {
    const std::size_t len = std::strlen(word);
    if (n_ - i_ < len || std::memcmp(s_ + i_, word, len) != 0) return false;
    const std::size_t end = i_ + len;
    if (end < n_) {  // the word must not continue: "Truex" is not True
      const char c = s_[end];
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') {
        return false;
      }
    }
    i_ = end;
    return true;
  }

  bool parse_bool() {
    if (match_word("True")) return true;
    if (match_word("False")) return false;
    fail_here("'fortran_order' must be True or False");
  }

  // An integer literal: optional '-', then decimal digits (no leading zeros, as in Python).
  std::int64_t parse_int() {
    const std::size_t start = i_;
    const bool negative = at('-');
    if (negative) {
      ++i_;
      skip_space();
    }
    if (i_ >= n_ || s_[i_] < '0' || s_[i_] > '9') fail_here("expected an integer dimension");
    if (s_[i_] == '0' && i_ + 1 < n_ && s_[i_ + 1] >= '0' && s_[i_ + 1] <= '9') {
      fail_here("a dimension must not have leading zeros");
    }
    std::uint64_t value = 0;
    bool too_large = false;
    while (i_ < n_ && s_[i_] >= '0' && s_[i_] <= '9') {
      const auto digit = static_cast<std::uint64_t>(s_[i_++] - '0');
      if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
        too_large = true;
      } else {
        value = value * 10 + digit;
      }
    }
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (negative && (too_large || value != 0)) {
      GA_NPY_FAIL(name_, "negative dimension "
                             << (too_large ? std::string("(huge)") : "-" + std::to_string(value))
                             << " in the shape at byte " << start);
    }
    if (too_large || value > kMax) {
      GA_NPY_FAIL(name_, "dimension " << printable(s_ + start, i_ - start) << " at byte " << start
                                      << " is too large (more than 2^63 - 1)");
    }
    return static_cast<std::int64_t>(value);
  }

  void parse_shape(Result& r) {
    expect('(', "'shape' must be a tuple such as (2, 3)");
    skip_space();
    bool trailing_comma = false;
    while (!at(')')) {
      const std::int64_t d = parse_int();
      if (r.rank < static_cast<std::size_t>(Shape::kMaxRank)) r.dims[r.rank] = d;
      ++r.rank;
      skip_space();
      trailing_comma = at(',');
      if (trailing_comma) {
        ++i_;
        skip_space();
      } else if (!at(')')) {
        fail_here("expected ',' or ')' in the shape tuple");
      }
    }
    ++i_;  // the ')'
    if (r.rank == 1 && !trailing_comma) {
      GA_NPY_FAIL(name_, "malformed header: the shape (" << r.dims[0]
                                                         << ") is not a tuple; a 1-D shape is "
                                                            "written ("
                                                         << r.dims[0] << ",)");
    }
  }

  const char* s_;
  std::size_t n_;
  std::size_t i_ = 0;
  const std::string& name_;
};

struct Header {
  DType dtype = DType::f32;
  Shape shape;
  std::size_t data_bytes = 0;
};

std::string shape_text(const std::int64_t* dims, std::size_t rank) {
  std::ostringstream os;
  os << "(";
  for (std::size_t i = 0; i < rank; ++i)
    os << (i ? ", " : "") << dims[i];
  os << (rank == 1 ? ",)" : ")");
  return os.str();
}

Header parse_header(const std::uint8_t* text, std::size_t size, const std::string& name) {
  HeaderParser::Result r = HeaderParser(reinterpret_cast<const char*>(text), size, name).parse();
  Header h;
  if (r.descr == "<f4") {
    h.dtype = DType::f32;
  } else if (r.descr == "<f2") {
    h.dtype = DType::f16;
  } else if (r.descr == ">f4" || r.descr == ">f2") {
    GA_NPY_FAIL(name, "big-endian data ('" << r.descr
                                           << "') is not supported; gradaccum reads little-endian "
                                              "'<f4' (float32) and '<f2' (float16)");
  } else {
    GA_NPY_FAIL(name, "unsupported dtype '" << printable(r.descr)
                                            << "'; gradaccum reads only little-endian '<f4' "
                                               "(float32) and '<f2' (float16)");
  }
  if (r.fortran_order) {
    GA_NPY_FAIL(name,
                "Fortran-order (column-major) arrays are not supported; save a C-order "
                "array (numpy.ascontiguousarray)");
  }
  if (r.rank > static_cast<std::size_t>(Shape::kMaxRank)) {
    GA_NPY_FAIL(name, "the array has " << r.rank << " dimensions; gradaccum supports at most "
                                       << Shape::kMaxRank);
  }
  // The element count and byte count, with every overflow caught before Shape sees the dims.
  const std::size_t item = dtype_size(h.dtype);
  bool any_zero = false;
  for (std::size_t i = 0; i < r.rank; ++i)
    any_zero = any_zero || r.dims[i] == 0;
  std::uint64_t numel = 1;
  if (any_zero) {
    numel = 0;
  } else {
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    for (std::size_t i = 0; i < r.rank; ++i) {
      const auto d = static_cast<std::uint64_t>(r.dims[i]);
      if (numel > kMax / d) {
        GA_NPY_FAIL(name, "the shape " << shape_text(r.dims, r.rank)
                                       << " has more elements than fit in a 64-bit count");
      }
      numel *= d;
    }
  }
  if (numel > std::numeric_limits<std::size_t>::max() / item ||
      numel > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / item) {
    GA_NPY_FAIL(name, "the shape " << shape_text(r.dims, r.rank) << " of '" << r.descr
                                   << "' has more bytes than fit in a 64-bit size");
  }
  h.data_bytes = static_cast<std::size_t>(numel) * item;
  h.shape = Shape(std::vector<std::int64_t>(r.dims, r.dims + r.rank));
  return h;
}

void check_data_size(const Header& h, std::size_t available, const std::string& name) {
  if (available < h.data_bytes) {
    GA_NPY_FAIL(name, "data is truncated: the header's shape "
                          << h.shape.str() << " of " << dtype_name(h.dtype) << " needs "
                          << h.data_bytes << " bytes, the file has " << available);
  }
  if (available > h.data_bytes) {
    GA_NPY_FAIL(name, "the file has " << available - h.data_bytes
                                      << " bytes of trailing data after the array: the header's "
                                         "shape "
                                      << h.shape.str() << " of " << dtype_name(h.dtype) << " needs "
                                      << h.data_bytes << " bytes, the file has " << available);
  }
}

void refuse_big_endian_host(const std::string& name) {
  if (kBigEndianHost) {
    GA_NPY_FAIL(name,
                "this host is big-endian; gradaccum reads and writes only little-endian "
                ".npy data and does not byte-swap");
  }
}

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

}  // namespace

Tensor parse_npy(const std::uint8_t* data, std::size_t size, const std::string& name) {
  refuse_big_endian_host(name);
  if (data == nullptr && size != 0) GA_NPY_FAIL(name, "no data (null pointer)");
  if (size == 0) GA_NPY_FAIL(name, "file is empty");
  const Prefix pre = parse_prefix(data, size, size, name);
  const Header h = parse_header(data + pre.prefix_size, pre.header_size, name);
  const std::size_t offset = pre.prefix_size + pre.header_size;
  check_data_size(h, size - offset, name);
  Tensor t = Tensor::empty(h.shape, h.dtype);
  if (h.data_bytes != 0) std::memcpy(t.raw_data(), data + offset, h.data_bytes);
  return t;
}

Tensor load_npy(const std::string& path) {
  refuse_big_endian_host(path);
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec) GA_NPY_FAIL(path, "cannot open: " << ec.message());
  if (std::filesystem::is_directory(status)) GA_NPY_FAIL(path, "cannot open: is a directory");
  if (!std::filesystem::is_regular_file(status)) GA_NPY_FAIL(path, "not a regular file");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) GA_NPY_FAIL(path, "cannot open: " << errno_text(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  in.seekg(0, std::ios::beg);
  if (!in || end < 0) GA_NPY_FAIL(path, "cannot determine the file size");
  if (static_cast<std::uint64_t>(end) > std::numeric_limits<std::size_t>::max()) {
    GA_NPY_FAIL(path, "file is too large to address");
  }
  const auto file_size = static_cast<std::size_t>(end);
  if (file_size == 0) GA_NPY_FAIL(path, "file is empty");

  auto read_exactly = [&](void* dst, std::size_t bytes, const char* what) {
    std::size_t done = 0;
    while (done < bytes) {
      const std::size_t chunk = std::min<std::size_t>(bytes - done, std::size_t{1} << 30);
      in.read(static_cast<char*>(dst) + done, static_cast<std::streamsize>(chunk));
      const auto got = static_cast<std::size_t>(in.gcount());
      done += got;
      if (got != chunk) {
        GA_NPY_FAIL(path, "read error: got " << done << " of the " << bytes << " bytes of the "
                                             << what << " (the file changed while reading?)");
      }
    }
  };

  std::uint8_t prefix[kLongestPrefix];
  const std::size_t prefix_avail = std::min(file_size, kLongestPrefix);
  read_exactly(prefix, prefix_avail, "prefix");
  const Prefix pre = parse_prefix(prefix, prefix_avail, file_size, path);
  // The header length is at most 2^32 - 1 and was checked against the file size.
  std::vector<std::uint8_t> header(pre.header_size);
  in.seekg(static_cast<std::streamoff>(pre.prefix_size), std::ios::beg);
  if (!in) GA_NPY_FAIL(path, "cannot seek to the header");
  read_exactly(header.data(), header.size(), "header");
  const Header h = parse_header(header.data(), header.size(), path);
  const std::size_t offset = pre.prefix_size + pre.header_size;
  check_data_size(h, file_size - offset, path);
  Tensor t = Tensor::empty(h.shape, h.dtype);
  read_exactly(t.raw_data(), h.data_bytes, "data");
  return t;
}

namespace {

// The .npy header (magic, version, length, dictionary, padding) of a CPU tensor.
std::string npy_header(const Tensor& tensor) {
  std::ostringstream dict;
  dict << "{'descr': '" << (tensor.dtype() == DType::f32 ? "<f4" : "<f2")
       << "', 'fortran_order': False, 'shape': (";
  const int rank = tensor.rank();
  for (int i = 0; i < rank; ++i)
    dict << (i ? ", " : "") << tensor.size(i);
  dict << (rank == 1 ? ",), }" : "), }");
  const std::string text = dict.str();

  // Version 1.0 unless the padded header does not fit its 2-byte length.
  auto padded_header = [&](std::size_t prefix_size) {
    const std::size_t unpadded = prefix_size + text.size() + 1;  // + '\n'
    return (unpadded + kAlignment - 1) / kAlignment * kAlignment - prefix_size;
  };
  int major = 1;
  std::size_t prefix_size = kMagicSize + 4;
  std::size_t header_size = padded_header(prefix_size);
  if (header_size > 0xFFFF) {
    major = 2;
    prefix_size = kMagicSize + 6;
    header_size = padded_header(prefix_size);
  }
  std::string out(kMagic, kMagicSize);
  out += static_cast<char>(major);
  out += '\0';
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  for (std::size_t i = 0; i < length_bytes; ++i) {
    out += static_cast<char>((header_size >> (8 * i)) & 0xFF);
  }
  out += text;
  out.append(header_size - text.size() - 1, ' ');
  out += '\n';
  return out;
}

}  // namespace

std::string encode_npy(const Tensor& tensor) {
  refuse_big_endian_host("encode_npy");
  GA_CHECK(tensor.defined(), "encode_npy: cannot encode an undefined tensor");
  if (tensor.is_cuda()) return encode_npy(tensor.to(Device::CPU));
  std::string out = npy_header(tensor);
  out.append(static_cast<const char*>(tensor.raw_data()), tensor.nbytes());
  return out;
}

void save_npy(const std::string& path, const Tensor& tensor) {
  refuse_big_endian_host(path);
  if (!tensor.defined()) GA_NPY_FAIL(path, "cannot save an undefined tensor");
  if (tensor.is_cuda()) {
    save_npy(path, tensor.to(Device::CPU));
    return;
  }
  const std::string out = npy_header(tensor);

  errno = 0;
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) GA_NPY_FAIL(path, "cannot open for writing: " << errno_text(errno));
  file.write(out.data(), static_cast<std::streamsize>(out.size()));
  const auto* bytes = static_cast<const char*>(tensor.raw_data());
  std::size_t done = 0;
  while (file && done < tensor.nbytes()) {
    const std::size_t chunk = std::min<std::size_t>(tensor.nbytes() - done, std::size_t{1} << 30);
    file.write(bytes + done, static_cast<std::streamsize>(chunk));
    done += chunk;
  }
  file.close();
  if (!file) {
    const std::string reason = errno_text(errno);
    std::error_code ignored;
    std::filesystem::remove(path, ignored);  // no half-written file left behind
    GA_NPY_FAIL(path, "write failed (disk full?): " << reason);
  }
}

}  // namespace gradaccum
