// An independent reference for the exact-sum tests: sign-magnitude big integers in units of
// 2^-149 (f32's smallest step), and rounding to f32 by search over the float line (the largest
// float not above the value, its successor, the nearer one, ties to even), with no arithmetic in
// common with kernels/exact_sum_rules.h.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace gradaccum::test {

class BigSum {
 public:
  void add(float x) { add(from_float(x)); }
  float round() const {
    if (mag_.empty()) return 0.0f;
    const float inf =
        neg_ ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    if (compare(mag_, pow2(128 + 149)) >= 0) return inf;  // 2^128 and beyond
    // Largest bit pattern b in [0, 0x7f7fffff] with value(b) <= |V| (patterns are ordered).
    std::uint32_t lo = 0, hi = 0x7f7fffffu;
    if (compare(from_bits(hi).mag_, mag_) <= 0) {
      lo = hi;
    } else {
      while (lo < hi) {
        const std::uint32_t mid = lo + (hi - lo + 1) / 2;
        if (compare(from_bits(mid).mag_, mag_) <= 0) {
          lo = mid;
        } else {
          hi = mid - 1;
        }
      }
    }
    // Candidates lo and lo + 1 (0x7f800000, infinity, stands for 2^128 in the comparison).
    const std::vector<std::uint32_t> below = sub(mag_, from_bits(lo).mag_);
    const std::vector<std::uint32_t> next =
        lo == 0x7f7fffffu ? pow2(128 + 149) : from_bits(lo + 1).mag_;
    const std::vector<std::uint32_t> above = sub(next, mag_);
    const int c = compare(below, above);
    const std::uint32_t bits = (c < 0 || (c == 0 && lo % 2 == 0)) ? lo : lo + 1;
    const std::uint32_t signed_bits = bits | (neg_ ? 0x80000000u : 0u);
    float out;
    std::memcpy(&out, &signed_bits, sizeof out);
    return out;
  }

 private:
  static BigSum from_bits(std::uint32_t b) {
    float x;
    std::memcpy(&x, &b, sizeof x);
    return from_float(x);
  }
  static BigSum from_float(float x) {
    std::uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    const std::uint32_t e = (b >> 23) & 0xffu;
    std::uint64_t m = b & 0x7fffffu;
    if (e != 0) m |= 0x800000u;
    BigSum r;
    r.neg_ = (b >> 31) != 0;
    const int s = e == 0 ? 0 : static_cast<int>(e) - 1;
    // m * 2^s, digit by digit.
    std::vector<std::uint32_t> v(static_cast<std::size_t>(s / 32 + 3), 0);
    const std::uint64_t shifted = m << (s % 32);
    v[static_cast<std::size_t>(s / 32)] = static_cast<std::uint32_t>(shifted);
    v[static_cast<std::size_t>(s / 32 + 1)] = static_cast<std::uint32_t>(shifted >> 32);
    r.mag_ = trim(v);
    if (r.mag_.empty()) r.neg_ = false;
    return r;
  }
  static std::vector<std::uint32_t> pow2(int k) {
    std::vector<std::uint32_t> v(static_cast<std::size_t>(k / 32 + 1), 0);
    v.back() = 1u << (k % 32);
    return v;
  }
  static std::vector<std::uint32_t> trim(std::vector<std::uint32_t> v) {
    while (!v.empty() && v.back() == 0)
      v.pop_back();
    return v;
  }
  static int compare(const std::vector<std::uint32_t>& a, const std::vector<std::uint32_t>& b) {
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
    for (std::size_t i = a.size(); i-- > 0;) {
      if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    }
    return 0;
  }
  static std::vector<std::uint32_t> plus(const std::vector<std::uint32_t>& a,
                                         const std::vector<std::uint32_t>& b) {
    std::vector<std::uint32_t> r(std::max(a.size(), b.size()) + 1, 0);
    std::uint64_t carry = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
      const std::uint64_t t = carry + (i < a.size() ? a[i] : 0) + (i < b.size() ? b[i] : 0);
      r[i] = static_cast<std::uint32_t>(t);
      carry = t >> 32;
    }
    return trim(r);
  }
  static std::vector<std::uint32_t> sub(const std::vector<std::uint32_t>& a,
                                        const std::vector<std::uint32_t>& b) {  // a >= b
    std::vector<std::uint32_t> r(a.size(), 0);
    std::int64_t borrow = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      std::int64_t t = static_cast<std::int64_t>(a[i]) - borrow - (i < b.size() ? b[i] : 0);
      borrow = t < 0 ? 1 : 0;
      if (t < 0) t += std::int64_t{1} << 32;
      r[i] = static_cast<std::uint32_t>(t);
    }
    return trim(r);
  }
  void add(const BigSum& o) {
    if (o.mag_.empty()) return;
    if (neg_ == o.neg_ || mag_.empty()) {
      if (mag_.empty()) neg_ = o.neg_;
      mag_ = plus(mag_, o.mag_);
      return;
    }
    const int c = compare(mag_, o.mag_);
    if (c >= 0) {
      mag_ = sub(mag_, o.mag_);
    } else {
      mag_ = sub(o.mag_, mag_);
      neg_ = o.neg_;
    }
    if (mag_.empty()) neg_ = false;
  }

  bool neg_ = false;
  std::vector<std::uint32_t> mag_;  // little-endian digits, no leading zeros
};

}  // namespace gradaccum::test
