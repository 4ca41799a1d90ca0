#include "kernels/accumulate.h"

#include <cstdint>
#include <vector>

#include "core/half.h"
#include "kernels/elementwise_cpu.h"
#include "kernels/gemm_problem.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/accumulate.cuh"
#endif

namespace gradaccum {
namespace {

inline float to_f32(float x) {
  return x;
}
inline float to_f32(std::uint16_t h) {
  return half_bits_to_float(h);
}

// acc + g (* scale) in f32, one rounding per operation (the CUDA kernel's arithmetic).
template <typename G>
bool add_f32(float* acc, const G* g, std::int64_t n, const float* scale) {
  return detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
    bool bad = false;
    if (scale != nullptr) {
      const float s = *scale;
      for (std::int64_t i = b; i < e; ++i) {
        acc[i] = acc[i] + to_f32(g[i]) * s;
        bad |= !detail::is_finite(acc[i]);
      }
    } else {
      for (std::int64_t i = b; i < e; ++i) {
        acc[i] = acc[i] + to_f32(g[i]);
        bad |= !detail::is_finite(acc[i]);
      }
    }
    return bad;
  });
}

// fp16 accumulator, fp16 arithmetic: the f32 sum of two halves rounded to half is the correctly
// rounded fp16 sum (24 >= 2 * 11 + 2), i.e. the device's __hadd. With a scale, g * scale is
// rounded to f32 and then to half before that addition.
bool add_f16(std::uint16_t* acc, const std::uint16_t* g, std::int64_t n, const float* scale) {
  const bool scaled = scale != nullptr;
  const float s = scaled ? *scale : 1.0f;
  return detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
    bool bad = false;
    for (std::int64_t i = b; i < e; ++i) {
      const std::uint16_t x = scaled ? float_to_half_bits(half_bits_to_float(g[i]) * s) : g[i];
      acc[i] = float_to_half_bits(half_bits_to_float(acc[i]) + half_bits_to_float(x));
      bad |= !detail::half_bits_finite(acc[i]);
    }
    return bad;
  });
}

// Kahan-compensated: comp holds what acc is missing (the sum is ~ acc + comp).
template <typename G>
bool add_kahan(float* acc, float* comp, const G* g, std::int64_t n, const float* scale) {
  const bool scaled = scale != nullptr;
  const float s = scaled ? *scale : 1.0f;
  return detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
    bool bad = false;
    for (std::int64_t i = b; i < e; ++i) {
      kahan_add(acc[i], comp[i], scaled ? to_f32(g[i]) * s : to_f32(g[i]));
      bad |= !detail::is_finite(acc[i]);
    }
    return bad;
  });
}

void accumulate_cpu(Tensor& acc, const Tensor& g, const AccumulateOptions& o) {
  const std::int64_t n = acc.numel();
  const float* scale = o.scale != nullptr ? o.scale->data<float>() : nullptr;
  bool bad = false;
  if (o.compensation != nullptr) {
    float* comp = o.compensation->data<float>();
    bad = g.dtype() == DType::f32
              ? add_kahan(acc.data<float>(), comp, g.data<float>(), n, scale)
              : add_kahan(acc.data<float>(), comp, g.data<std::uint16_t>(), n, scale);
  } else if (acc.dtype() == DType::f16) {
    bad = add_f16(acc.data<std::uint16_t>(), g.data<std::uint16_t>(), n, scale);
  } else if (g.dtype() == DType::f32) {
    bad = add_f32(acc.data<float>(), g.data<float>(), n, scale);
  } else {
    bad = add_f32(acc.data<float>(), g.data<std::uint16_t>(), n, scale);
  }
  if (bad && o.nonfinite != nullptr) *o.nonfinite->word() = 1u;
}

#if GRADACCUM_WITH_CUDA
// The options' scale and flags as device pointers.
cuda::AccumulateFlags flags_of(const AccumulateOptions& o) {
  cuda::AccumulateFlags f;
  f.scale = o.scale != nullptr ? o.scale->data<float>() : nullptr;
  f.nonfinite = o.nonfinite != nullptr ? o.nonfinite->word() : nullptr;
  f.skip_if = o.skip_if != nullptr ? o.skip_if->word() : nullptr;
  return f;
}

void accumulate_cuda(Tensor& acc, const Tensor& g, const AccumulateOptions& o) {
  const std::int64_t n = acc.numel();
  const cuda::AccumulateFlags f = flags_of(o);
  if (o.compensation != nullptr) {
    float* comp = o.compensation->data<float>();
    if (g.dtype() == DType::f32) {
      cuda::accumulate_kahan_f32(acc.data<float>(), comp, g.data<float>(), n, f);
    } else {
      cuda::accumulate_kahan_f16(acc.data<float>(), comp, g.data<std::uint16_t>(), n, f);
    }
  } else if (acc.dtype() == DType::f16) {
    cuda::accumulate_f16_f16(acc.data<std::uint16_t>(), g.data<std::uint16_t>(), n, f);
  } else if (g.dtype() == DType::f32) {
    cuda::accumulate_f32_f32(acc.data<float>(), g.data<float>(), n, f);
  } else {
    cuda::accumulate_f32_f16(acc.data<float>(), g.data<std::uint16_t>(), n, f);
  }
}
#endif

void check_accumulate(const Tensor& acc, const Tensor& g, const AccumulateOptions& options) {
  constexpr const char* op = "accumulate";
  detail::check_defined(op, acc, "acc");
  detail::check_defined(op, g, "g");
  detail::check_same_shape(op, g, "g", acc, "acc");
  detail::check_same_device(op, g, "g", acc, "acc");
  if (acc.dtype() == DType::f16) {
    GA_CHECK(g.dtype() == DType::f16, op << ": an f16 acc takes an f16 g (fp16 arithmetic); "
                                         << "expected g of dtype f16, got " << g.str());
  }
  if (options.compensation != nullptr) {
    const Tensor& comp = *options.compensation;
    detail::check_defined(op, comp, "compensation");
    GA_CHECK(acc.dtype() == DType::f32,
             op << ": Kahan accumulation needs an f32 acc, got " << acc.str());
    detail::check_dtype_is(op, comp, "compensation", DType::f32);
    detail::check_same_shape(op, comp, "compensation", acc, "acc");
    detail::check_same_device(op, comp, "compensation", acc, "acc");
    GA_CHECK(acc.numel() == 0 || comp.raw_data() != acc.raw_data(),
             op << ": compensation may not alias acc (" << acc.str() << ")");
  }
  if (options.scale != nullptr) {
    detail::check_scalar_f32(op, *options.scale, "scale", acc, "acc");
  }
  if (options.nonfinite != nullptr) {
    GA_CHECK(options.nonfinite->device() == acc.device(),
             op << ": expected the nonfinite flag on " << device_name(acc.device())
                << " (the device of acc), got a flag on "
                << device_name(options.nonfinite->device()));
  }
  if (options.skip_if != nullptr) {
    GA_CHECK(options.skip_if->device() == acc.device(),
             op << ": expected the skip_if flag on " << device_name(acc.device())
                << " (the device of acc), got a flag on "
                << device_name(options.skip_if->device()));
  }
}

// The one-tensor options of a target of the several-tensor call.
AccumulateOptions options_for(const AccumulateTarget& t, const AccumulateOptions& shared) {
  AccumulateOptions o = shared;
  o.compensation = t.compensation;
  if (!t.apply_scale) o.scale = nullptr;
  return o;
}

void check_flag_device(const char* op, const Tensor& t, const NonFiniteFlag& flag) {
  detail::check_defined(op, t, "t");
  GA_CHECK(flag.device() == t.device(), op << ": expected the flag on " << device_name(t.device())
                                           << " (the device of t), got a flag on "
                                           << device_name(flag.device()));
}

}  // namespace

void accumulate(Tensor& acc, const Tensor& g, const AccumulateOptions& options) {
  check_accumulate(acc, g, options);
  if (acc.device() == Device::CPU) {
    if (options.skip_if != nullptr && *options.skip_if->word() != 0u) return;
    accumulate_cpu(acc, g, options);
    return;
  }
#if GRADACCUM_WITH_CUDA
  accumulate_cuda(acc, g, options);
#else
  GA_FAIL("accumulate: " << acc.str() << " is on the CUDA device, but gradaccum was built "
                         << "without CUDA");
#endif
}

void check_finite(const Tensor& t, NonFiniteFlag& flag) {
  constexpr const char* op = "check_finite";
  check_flag_device(op, t, flag);
  const std::int64_t n = t.numel();
  if (t.device() == Device::CPU) {
    bool bad = false;
    if (t.dtype() == DType::f32) {
      const float* p = t.data<float>();
      bad = detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
        bool any = false;
        for (std::int64_t i = b; i < e; ++i)
          any |= !detail::is_finite(p[i]);
        return any;
      });
    } else {
      const std::uint16_t* p = t.data<std::uint16_t>();
      bad = detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
        bool any = false;
        for (std::int64_t i = b; i < e; ++i)
          any |= !detail::half_bits_finite(p[i]);
        return any;
      });
    }
    if (bad) *flag.word() = 1u;
    return;
  }
#if GRADACCUM_WITH_CUDA
  if (t.dtype() == DType::f32) {
    cuda::check_finite_f32(t.data<float>(), n, flag.word());
  } else {
    cuda::check_finite_f16(t.data<std::uint16_t>(), n, flag.word());
  }
#else
  GA_FAIL(op << ": " << t.str() << " is on the CUDA device, but gradaccum was built without CUDA");
#endif
}

void accumulate(const std::vector<AccumulateTarget>& targets, const AccumulateOptions& options) {
  constexpr const char* op = "accumulate (several tensors)";
  GA_CHECK(options.compensation == nullptr,
           op << ": each target carries its own compensation; options.compensation must be null");
  bool one_launch = true;  // CUDA, every tensor f32
  for (const AccumulateTarget& t : targets) {
    GA_CHECK(t.acc != nullptr && t.g != nullptr, op << ": a target without acc or g");
    check_accumulate(*t.acc, *t.g, options_for(t, options));
    one_launch = one_launch && t.acc->device() == Device::CUDA && t.acc->dtype() == DType::f32 &&
                 t.g->dtype() == DType::f32;
  }
  if (targets.empty()) return;
#if GRADACCUM_WITH_CUDA
  if (one_launch) {
    std::vector<cuda::MultiEntry> entries;
    for (const AccumulateTarget& t : targets) {
      entries.push_back({t.acc->data<float>(),
                         t.compensation != nullptr ? t.compensation->data<float>() : nullptr,
                         t.g->data<float>(), t.acc->numel(), t.apply_scale});
    }
    cuda::accumulate_multi_f32(entries.data(), static_cast<int>(entries.size()), flags_of(options));
    return;
  }
#endif
  for (const AccumulateTarget& t : targets)
    accumulate(*t.acc, *t.g, options_for(t, options));
}

void check_finite(const std::vector<const Tensor*>& tensors, NonFiniteFlag& flag) {
  constexpr const char* op = "check_finite (several tensors)";
  bool one_launch = true;
  for (const Tensor* t : tensors) {
    GA_CHECK(t != nullptr, op << ": a null tensor");
    check_flag_device(op, *t, flag);
    one_launch = one_launch && t->device() == Device::CUDA && t->dtype() == DType::f32;
  }
  if (tensors.empty()) return;
#if GRADACCUM_WITH_CUDA
  if (one_launch) {
    std::vector<const float*> data;
    std::vector<std::int64_t> n;
    for (const Tensor* t : tensors) {
      data.push_back(t->data<float>());
      n.push_back(t->numel());
    }
    cuda::check_finite_multi_f32(data.data(), n.data(), static_cast<int>(data.size()), flag.word());
    return;
  }
#endif
  for (const Tensor* t : tensors)
    check_finite(*t, flag);
}

}  // namespace gradaccum
