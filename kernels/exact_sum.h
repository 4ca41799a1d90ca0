// Exact sums of f32 values: a fixed-point accumulator per element that holds the exact sum of
// every finite f32 added to it (no rounding, no flush to zero, no saturation), rounded once to
// f32 when read. Integer addition is associative, so the bits of the result do not depend on
// the order of the additions, on how they are split over threads, ranks or devices: the window's
// Compensation::Exact is built on it (issue: exact accumulation).
//
// Representation (kernels/exact_sum_rules.h): nine int64 limbs per element, limb j worth
// 2^(32 j - 149), carry-save: an addend touches two limbs and never carries. 72 bytes per element;
// at most 2^31 - 1 addends per element between zero() calls (each limb then stays exact).
// Limb-major in memory (limb j of every element together), so that a GPU warp's accesses to one
// limb are contiguous.
#pragma once

#include <cstdint>

#include "core/storage.h"
#include "core/tensor.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum {

struct ExactAddOptions {
  // f32 [1] on the accumulator's device: g is multiplied by *scale (rounded to f32) first.
  const Tensor* scale = nullptr;
  // Raised when an addend (after scaling) is non-finite; such an addend is never added.
  NonFiniteFlag* nonfinite = nullptr;
  // Raised: the call adds nothing (a dropped micro-batch, decided on the device).
  const NonFiniteFlag* skip_if = nullptr;
};

class ExactSum {
 public:
  static constexpr int kLimbs = 9;
  static constexpr std::size_t kBytesPerElement = kLimbs * sizeof(std::uint64_t);
  static constexpr std::uint64_t kMaxAddends = (std::uint64_t{1} << 31) - 1;

  // Throws unless `count` addends per element fit (count <= kMaxAddends): `what` names the
  // caller in the message.
  static void check_addends(std::uint64_t count, const char* what);

  ExactSum() = default;
  ExactSum(const Shape& shape, Device device);  // zeroed; throws OutOfMemoryError
  ExactSum(ExactSum&&) noexcept = default;
  ExactSum& operator=(ExactSum&&) noexcept = default;

  const Shape& shape() const { return shape_; }
  std::int64_t numel() const { return shape_.numel(); }
  Device device() const { return limbs_.device(); }
  bool defined() const { return defined_; }

  void zero();
  // acc += g exactly, element by element (g f32 or f16 of the accumulator's shape and device).
  void add(const Tensor& g, const ExactAddOptions& options = {});
  // out (f32, same shape and device) = the sums, each rounded once to f32 (nearest, ties to
  // even; +-inf beyond the largest finite f32).
  void round_to(Tensor& out) const;

  // The limbs (numel x kLimbs uint64, limb-major), for reducing them as integers across ranks.
  Storage& limbs() { return limbs_; }
  const Storage& limbs() const { return limbs_; }

 private:
  Shape shape_;
  Storage limbs_;
  bool defined_ = false;
};

}  // namespace gradaccum
