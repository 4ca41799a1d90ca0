// Helpers shared by the CPU implementations of the elementwise kernels (ReLU, L1 loss backward,
// accumulation, SGD). Private to kernels/: not part of the public API.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "core/tensor.h"

namespace gradaccum::detail {

// Argument checks with messages of the form "<op>: <name> ... expected X, got Y".
inline void check_defined(const char* op, const Tensor& t, const char* name) {
  GA_CHECK(t.defined(), op << ": " << name << " is an undefined tensor");
}
inline void check_same_device(const char* op, const Tensor& t, const char* name, const Tensor& ref,
                              const char* ref_name) {
  GA_CHECK(t.device() == ref.device(), op << ": all tensors must be on one device; expected "
                                          << name << " on " << device_name(ref.device())
                                          << " (the device of " << ref_name << "), got "
                                          << t.str());
}
inline void check_same_shape(const char* op, const Tensor& t, const char* name, const Tensor& ref,
                             const char* ref_name) {
  GA_CHECK(t.shape() == ref.shape(), op << ": expected " << name << " of shape "
                                        << ref.shape().str() << " (the shape of " << ref_name
                                        << "), got " << t.str());
}
inline void check_dtype_is(const char* op, const Tensor& t, const char* name, DType expected) {
  GA_CHECK(t.dtype() == expected, op << ": expected " << name << " of dtype "
                                     << dtype_name(expected) << ", got " << t.str());
}
inline void check_same_dtype(const char* op, const Tensor& t, const char* name, const Tensor& ref,
                             const char* ref_name) {
  GA_CHECK(t.dtype() == ref.dtype(), op << ": expected " << name << " of dtype "
                                        << dtype_name(ref.dtype()) << " (the dtype of " << ref_name
                                        << "), got " << t.str());
}
// A device scalar: f32 with one element ([1]), on `ref`'s device.
inline void check_scalar_f32(const char* op, const Tensor& t, const char* name, const Tensor& ref,
                             const char* ref_name) {
  check_defined(op, t, name);
  GA_CHECK(t.dtype() == DType::f32 && t.numel() == 1,
           op << ": expected " << name << " to be an f32 [1] scalar, got " << t.str());
  check_same_device(op, t, name, ref, ref_name);
}

// Runs body(begin, end) over [0, n) and returns the OR of its results (e.g. "saw a non-finite
// value"). Loops of more than ~1M elements are split over a few threads in contiguous chunks;
// elementwise work gives the same results whatever the split.
template <typename Body>
bool parallel_chunks(std::int64_t n, Body&& body) {
  constexpr std::int64_t kMinPerThread = std::int64_t{1} << 19;
  constexpr std::int64_t kThreshold = std::int64_t{1} << 20;
  constexpr unsigned kMaxThreads = 8;
  if (n <= kThreshold) return n > 0 ? static_cast<bool>(body(std::int64_t{0}, n)) : false;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const auto want = static_cast<unsigned>(std::min<std::int64_t>(
      {static_cast<std::int64_t>(std::min(hw, kMaxThreads)), n / kMinPerThread}));
  const unsigned parts = std::max(1u, want);
  if (parts == 1) return static_cast<bool>(body(std::int64_t{0}, n));
  // Chunk boundaries on multiples of 64 elements (whole cache lines for both dtypes).
  const std::int64_t chunk = ((n + parts - 1) / parts + 63) / 64 * 64;
  std::vector<char> results(parts, 0);
  std::vector<std::thread> threads;
  threads.reserve(parts - 1);
  unsigned next = 1;  // chunk 0 runs on the calling thread, last
  for (; next < parts; ++next) {
    const std::int64_t begin = std::min(n, chunk * next);
    const std::int64_t end = std::min(n, begin + chunk);
    try {
      threads.emplace_back([&body, &results, next, begin, end] {
        results[next] = begin < end && static_cast<bool>(body(begin, end));
      });
    } catch (const std::system_error&) {
      break;  // no more threads: the rest runs here
    }
  }
  for (unsigned i = next; i < parts; ++i) {
    const std::int64_t begin = std::min(n, chunk * i);
    const std::int64_t end = std::min(n, begin + chunk);
    results[i] = begin < end && static_cast<bool>(body(begin, end));
  }
  results[0] = static_cast<bool>(body(std::int64_t{0}, std::min(n, chunk)));
  for (std::thread& t : threads)
    t.join();
  return std::any_of(results.begin(), results.end(), [](char r) { return r != 0; });
}

inline bool is_finite(float x) {
  return std::isfinite(x);
}

// A half (as its bits) is finite when its exponent field is not all ones.
inline bool half_bits_finite(std::uint16_t h) {
  return (h & 0x7C00u) != 0x7C00u;
}

}  // namespace gradaccum::detail
