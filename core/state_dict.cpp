#include "core/state_dict.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/file_bytes.h"
#include "core/npy.h"

namespace gradaccum {
namespace {

const char kMagic[] = "GRADACCUM-STATE 1\n";
constexpr std::size_t kMagicSize = sizeof kMagic - 1;
const char kEnd[] = "END\n";
constexpr std::size_t kEndSize = sizeof kEnd - 1;
constexpr std::size_t kTrailerSize = 4 + kEndSize;  // CRC-32, then "END\n"
constexpr std::uint64_t kMaxFileBytes = std::uint64_t{1} << 40;

#define GA_STATE_FAIL(name, problem) GA_FAIL("state file '" << (name) << "': " << problem)

bool plain_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k)
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\0') return false;
  return true;
}

std::uint32_t crc32_of(const char* data, std::size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<std::uint32_t>(crc);
}

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xFF);
}

std::uint64_t get_le(const std::string& in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= std::uint64_t{static_cast<unsigned char>(in[at + i])} << (8 * i);
  return v;
}

// A decimal u64 with nothing else; false otherwise.
bool parse_u64(const std::string& s, std::uint64_t& v) {
  if (s.empty() || s.size() > 19) return false;
  v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

}  // namespace

std::string exact_decimal(double v) {
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

void StateDict::set_text(const std::string& key, const std::string& value) {
  GA_CHECK(plain_key(key), "StateDict: key '" << key << "' is empty or has whitespace");
  GA_CHECK(value.find_first_of("\r\n") == std::string::npos,
           "StateDict: the value of '" << key << "' has a line break");
  texts_[key] = value;
}

void StateDict::set_tensor(const std::string& name, const Tensor& t) {
  GA_CHECK(plain_key(name), "StateDict: tensor name '" << name << "' is empty or has whitespace");
  GA_CHECK(t.defined(), "StateDict: tensor '" << name << "' is undefined");
  tensors_[name] = t.to(Device::CPU);
}

const std::string& StateDict::text(const std::string& key) const {
  const auto it = texts_.find(key);
  GA_CHECK(it != texts_.end(), "state: no value '" << key << "'; expected one");
  return it->second;
}

const Tensor& StateDict::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  GA_CHECK(it != tensors_.end(), "state: no tensor '" << name << "'; expected one");
  return it->second;
}

std::int64_t StateDict::integer(const std::string& key) const {
  const std::string& s = text(key);
  const bool negative = !s.empty() && s[0] == '-';
  std::uint64_t v = 0;
  GA_CHECK(parse_u64(negative ? s.substr(1) : s, v) && v <= INT64_MAX,
           "state: value '" << key << "' is '" << s << "'; expected an integer");
  return negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
}

double StateDict::number(const std::string& key) const {
  const std::string& s = text(key);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  GA_CHECK(!s.empty() && end == s.c_str() + s.size(),
           "state: value '" << key << "' is '" << s << "'; expected a number");
  return v;
}

void StateDict::merge(const std::string& prefix, const StateDict& other) {
  for (const auto& [k, v] : other.texts_) {
    GA_CHECK(!has_text(prefix + k), "StateDict::merge: '" << prefix + k << "' is already there");
    set_text(prefix + k, v);
  }
  for (const auto& [k, t] : other.tensors_) {
    GA_CHECK(!has_tensor(prefix + k), "StateDict::merge: '" << prefix + k << "' is already there");
    tensors_[prefix + k] = t.clone();
  }
}

StateDict StateDict::under(const std::string& prefix) const {
  StateDict out;
  for (const auto& [k, v] : texts_)
    if (k.compare(0, prefix.size(), prefix) == 0 && k.size() > prefix.size()) {
      out.texts_[k.substr(prefix.size())] = v;
    }
  for (const auto& [k, t] : tensors_)
    if (k.compare(0, prefix.size(), prefix) == 0 && k.size() > prefix.size()) {
      out.tensors_[k.substr(prefix.size())] = t.clone();
    }
  return out;
}

std::string StateDict::serialize() const {
  std::vector<std::string> images;
  std::ostringstream header;
  for (const auto& [k, v] : texts_)
    header << "text " << k << ' ' << v << '\n';
  std::uint64_t offset = 0;
  for (const auto& [k, t] : tensors_) {
    images.push_back(encode_npy(t));
    header << "tensor " << k << ' ' << offset << ' ' << images.back().size() << '\n';
    offset += images.back().size();
  }
  const std::string h = header.str();
  std::string out(kMagic, kMagicSize);
  put_le(out, h.size(), 8);
  out += h;
  for (const std::string& image : images)
    out += image;
  put_le(out, crc32_of(out.data(), out.size()), 4);
  out.append(kEnd, kEndSize);
  return out;
}

StateDict StateDict::parse(const std::string& bytes, const std::string& name) {
  if (bytes.size() < kMagicSize || bytes.compare(0, kMagicSize, kMagic) != 0) {
    GA_STATE_FAIL(name,
                  "not a gradaccum state file (expected it to start with 'GRADACCUM-STATE 1')");
  }
  if (bytes.size() < kMagicSize + 8 + kTrailerSize ||
      bytes.compare(bytes.size() - kEndSize, kEndSize, kEnd) != 0) {
    GA_STATE_FAIL(name, "truncated: " << bytes.size()
                                      << " bytes, without the end marker (an interrupted write?)");
  }
  const std::size_t body = bytes.size() - kTrailerSize;
  const auto stored = static_cast<std::uint32_t>(get_le(bytes, body, 4));
  const std::uint32_t actual = crc32_of(bytes.data(), body);
  if (stored != actual) {
    GA_STATE_FAIL(name, "corrupted: its CRC-32 is " << actual << ", the file says " << stored);
  }
  const std::uint64_t header_size = get_le(bytes, kMagicSize, 8);
  const std::size_t data_at = kMagicSize + 8;
  if (header_size > body - data_at) {
    GA_STATE_FAIL(name, "header of " << header_size << " bytes in a file of " << bytes.size());
  }
  const std::size_t tensors_at = data_at + static_cast<std::size_t>(header_size);
  const std::uint64_t tensor_bytes = body - tensors_at;
  StateDict out;
  std::istringstream lines(bytes.substr(data_at, static_cast<std::size_t>(header_size)));
  std::string line;
  std::size_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    const std::size_t a = line.find(' ');
    const std::size_t b = a == std::string::npos ? a : line.find(' ', a + 1);
    const std::string kind = line.substr(0, a);
    const std::string key = b == std::string::npos ? "" : line.substr(a + 1, b - a - 1);
    const std::string rest = b == std::string::npos ? "" : line.substr(b + 1);
    if (kind == "text" && plain_key(key)) {
      out.texts_[key] = rest;
      continue;
    }
    std::uint64_t offset = 0, size = 0;
    const std::size_t c = rest.find(' ');
    if (kind != "tensor" || !plain_key(key) || c == std::string::npos ||
        !parse_u64(rest.substr(0, c), offset) || !parse_u64(rest.substr(c + 1), size)) {
      GA_STATE_FAIL(name, "header line " << number
                                         << " is malformed: expected 'text KEY VALUE' "
                                            "or 'tensor NAME OFFSET BYTES'");
    }
    if (offset > tensor_bytes || size > tensor_bytes - offset) {
      GA_STATE_FAIL(name, "tensor '" << key << "' (" << size << " bytes at " << offset
                                     << ") lies outside the file's " << tensor_bytes
                                     << " bytes of tensors");
    }
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data()) + tensors_at + offset;
    out.tensors_[key] =
        parse_npy(p, static_cast<std::size_t>(size), name + ", tensor '" + key + "'");
  }
  return out;
}

void StateDict::save(const std::string& path) const {
  write_file_atomically(path, serialize());
}

StateDict StateDict::load(const std::string& path) {
  return parse(read_file_bytes(path, kMaxFileBytes, "state file"), path);
}

}  // namespace gradaccum
