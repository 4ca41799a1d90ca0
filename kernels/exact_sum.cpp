#include "kernels/exact_sum.h"

#include "core/cuda_device.h"
#include "core/half.h"
#include "kernels/elementwise_cpu.h"
#include "kernels/exact_sum_rules.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/exact_sum.cuh"
#endif

namespace gradaccum {
namespace {

static_assert(ExactSum::kLimbs == exact_rules::kLimbs &&
                  ExactSum::kMaxAddends == exact_rules::kMaxAddends,
              "the class and its arithmetic must agree");

inline float to_f32(float x) {
  return x;
}
inline float to_f32(std::uint16_t h) {
  return half_bits_to_float(h);
}

template <typename G>
bool add_cpu(std::uint64_t* limbs, const G* g, std::int64_t n, const float* scale) {
  // One pointer per limb row: the two read-modify-writes of an element index them directly.
  std::uint64_t* row[exact_rules::kLimbs];
  for (int j = 0; j < exact_rules::kLimbs; ++j)
    row[j] = limbs + j * n;
  return detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
    bool bad = false;
    const float s = scale != nullptr ? *scale : 1.0f;
    for (std::int64_t i = b; i < e; ++i) {
      const float x = scale != nullptr ? to_f32(g[i]) * s : to_f32(g[i]);
      if (!exact_rules::finite(x)) {
        bad = true;
        continue;
      }
      const exact_rules::Addend a = exact_rules::split(x);
      row[a.j][i] += a.lo;
      row[a.j + 1][i] += a.hi;
    }
    return bad;
  });
}

#if !GRADACCUM_WITH_CUDA
[[noreturn]] void no_cuda(const char* what) {
  GA_FAIL(what << ": a CUDA tensor in a build without CUDA support");
}
#endif

std::size_t limb_bytes(const Shape& shape) {
  const auto n = static_cast<std::size_t>(shape.numel());
  GA_CHECK(n <= SIZE_MAX / ExactSum::kBytesPerElement,
           "ExactSum: " << shape.str() << " is too large for " << ExactSum::kBytesPerElement
                        << " bytes per element");
  return n * ExactSum::kBytesPerElement;
}

}  // namespace

// The worst addend adds 2^32 - 1 in magnitude to a limb: kMaxAddends of them stay below 2^63.
static_assert(ExactSum::kMaxAddends * ((std::uint64_t{1} << 32) - 1) < (std::uint64_t{1} << 63),
              "the addend limit keeps every limb exact");

void ExactSum::check_addends(std::uint64_t count, const char* what) {
  GA_CHECK(count <= kMaxAddends, what << ": exact accumulation holds at most " << kMaxAddends
                                      << " addends per element (its int64 limbs could overflow "
                                         "past that); asked for "
                                      << count << ": step, then start the next sum");
}

ExactSum::ExactSum(const Shape& shape, Device device)
    : shape_(shape), limbs_(limb_bytes(shape), device), defined_(true) {
  zero();
}

void ExactSum::zero() {
  GA_CHECK(defined_, "ExactSum::zero: an undefined accumulator");
  if (limbs_.bytes() == 0) return;
  if (device() == Device::CPU) {
    std::fill_n(static_cast<std::uint64_t*>(limbs_.data()), limbs_.bytes() / 8, std::uint64_t{0});
  } else {
    detail::cuda_zero(limbs_.data(), limbs_.bytes());
  }
}

void ExactSum::add(const Tensor& g, const ExactAddOptions& o) {
  const char* op = "ExactSum::add";
  GA_CHECK(defined_, op << ": an undefined accumulator");
  detail::check_defined(op, g, "g");
  GA_CHECK(g.shape() == shape_, op << ": expected g of shape " << shape_.str()
                                   << " (the accumulator's), got " << g.str());
  GA_CHECK(g.device() == device(), op << ": expected g on " << device_name(device())
                                      << " (the accumulator's device), got " << g.str());
  if (o.scale) detail::check_scalar_f32(op, *o.scale, "scale", g, "g");
  if (o.nonfinite) {
    GA_CHECK(o.nonfinite->device() == device(), op << ": the nonfinite flag is on another device");
  }
  if (o.skip_if) {
    GA_CHECK(o.skip_if->device() == device(), op << ": the skip_if flag is on another device");
  }
  auto* limbs = static_cast<std::uint64_t*>(limbs_.data());
  const std::int64_t n = numel();
  const float* scale = o.scale ? o.scale->data<float>() : nullptr;
  if (device() == Device::CPU) {
    if (o.skip_if != nullptr && o.skip_if->raised()) return;
    const bool bad = g.dtype() == DType::f32 ? add_cpu(limbs, g.data<float>(), n, scale)
                                             : add_cpu(limbs, g.data<std::uint16_t>(), n, scale);
    if (bad && o.nonfinite != nullptr) o.nonfinite->set(true);
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::AccumulateFlags f;
  f.scale = scale;
  f.nonfinite = o.nonfinite ? o.nonfinite->word() : nullptr;
  f.skip_if = o.skip_if ? o.skip_if->word() : nullptr;
  if (g.dtype() == DType::f32) {
    cuda::exact_add_f32(limbs, g.data<float>(), n, f);
  } else {
    cuda::exact_add_f16(limbs, g.data<std::uint16_t>(), n, f);
  }
#else
  no_cuda(op);
#endif
}

void ExactSum::round_to(Tensor& out) const {
  const char* op = "ExactSum::round_to";
  GA_CHECK(defined_, op << ": an undefined accumulator");
  detail::check_defined(op, out, "out");
  detail::check_dtype_is(op, out, "out", DType::f32);
  GA_CHECK(out.shape() == shape_, op << ": expected out of shape " << shape_.str()
                                     << " (the accumulator's), got " << out.str());
  GA_CHECK(out.device() == device(), op << ": expected out on " << device_name(device())
                                        << " (the accumulator's device), got " << out.str());
  const auto* limbs = static_cast<const std::uint64_t*>(limbs_.data());
  const std::int64_t n = numel();
  float* dst = out.data<float>();
  if (device() == Device::CPU) {
    detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        dst[i] = exact_rules::round(limbs + i, n);
      return false;
    });
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::exact_round(limbs, dst, n);
#else
  no_cuda(op);
#endif
}

}  // namespace gradaccum
