#include "kernels/l1_loss.h"

#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "kernels/elementwise_cpu.h"
#include "kernels/gemm_problem.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/l1_loss.cuh"
#endif

namespace gradaccum {
namespace {

// Rows are the samples: the first dimension (a rank-0 tensor is one row of one column).
void rows_and_cols(const Tensor& t, std::int64_t& rows, std::int64_t& cols) {
  if (t.rank() == 0) {
    rows = 1;
    cols = 1;
    return;
  }
  rows = t.size(0);
  cols = 1;
  for (int d = 1; d < t.rank(); ++d)
    cols *= t.size(d);
}

inline float value_of(float x) {
  return x;
}
inline float value_of(std::uint16_t h) {
  return half_bits_to_float(h);
}

// The exact algorithm the CUDA kernel implements too: per row an f32 chain over the columns
// (left to right), then an f32 chain over the rows, starting from the stored accumulator.
// With comp, the chain over the rows is Kahan-compensated (comp read and written).
template <typename T>
float l1_sum_cpu(const T* pred, const T* target, std::int64_t rows, std::int64_t cols, float acc,
                 float* comp) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* p = pred + r * cols;
    const T* t = target + r * cols;
    float s = 0.0f;
    for (std::int64_t c = 0; c < cols; ++c)
      s = s + std::fabs(value_of(p[c]) - value_of(t[c]));
    if (comp != nullptr) {
      kahan_add(acc, *comp, s);
    } else {
      acc = acc + s;
    }
  }
  return acc;
}

// sign(p - t) * coef, 0 at equality, NaN when either is NaN (as the CUDA kernel).
inline float l1_grad(float p, float t, float coef) {
  return p > t ? coef : (p < t ? -coef : (p == t ? 0.0f : p - t));
}

void l1_backward_cpu(const Tensor& pred, const Tensor& target, float coef, Tensor& dpred,
                     bool accumulate) {
  const std::int64_t n = pred.numel();
  if (pred.dtype() == DType::f32) {
    const float* p = pred.data<float>();
    const float* t = target.data<float>();
    float* out = dpred.data<float>();
    detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const float g = l1_grad(p[i], t[i], coef);
        out[i] = accumulate ? out[i] + g : g;
      }
      return false;
    });
  } else {
    const std::uint16_t* p = pred.data<std::uint16_t>();
    const std::uint16_t* t = target.data<std::uint16_t>();
    std::uint16_t* out = dpred.data<std::uint16_t>();
    detail::parallel_chunks(n, [=](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) {
        const float g = l1_grad(half_bits_to_float(p[i]), half_bits_to_float(t[i]), coef);
        out[i] = float_to_half_bits(accumulate ? half_bits_to_float(out[i]) + g : g);
      }
      return false;
    });
  }
}

void check_inputs(const char* op, const Tensor& pred, const Tensor& target) {
  detail::check_defined(op, pred, "pred");
  detail::check_defined(op, target, "target");
  GA_CHECK(pred.dtype() == DType::f32 || pred.dtype() == DType::f16,
           op << ": expected pred of dtype f32 or f16, got " << pred.str());
  detail::check_same_dtype(op, target, "target", pred, "pred");
  detail::check_same_shape(op, target, "target", pred, "pred");
  detail::check_same_device(op, target, "target", pred, "pred");
}

}  // namespace

void l1_loss_forward(const Tensor& pred, const Tensor& target, Tensor& loss_sum, GradientMode mode,
                     const L1ForwardExtras& extras) {
  if (mode == GradientMode::Ignore) return;
  constexpr const char* op = "l1_loss_forward";
  check_inputs(op, pred, target);
  detail::check_scalar_f32(op, loss_sum, "loss_sum", pred, "pred");
  if (extras.compensation != nullptr) {
    detail::check_scalar_f32(op, *extras.compensation, "compensation", pred, "pred");
    GA_CHECK(extras.compensation->raw_data() != loss_sum.raw_data(),
             op << ": the compensation may not be loss_sum itself");
  }
  if (extras.reduced != nullptr) {
    detail::check_scalar_f32(op, *extras.reduced, "reduced", pred, "pred");
  }
  if (extras.count != nullptr) check_window_count(*extras.count, pred.device(), op);
  const bool accumulate = mode == GradientMode::Accumulate;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  rows_and_cols(pred, rows, cols);
  if (pred.device() == Device::CPU) {
    float* loss = loss_sum.data<float>();
    const float start = accumulate ? *loss : 0.0f;
    float* comp = extras.compensation != nullptr ? extras.compensation->data<float>() : nullptr;
    if (comp != nullptr && !accumulate) *comp = 0.0f;
    if (pred.dtype() == DType::f32) {
      *loss = l1_sum_cpu(pred.data<float>(), target.data<float>(), rows, cols, start, comp);
    } else {
      *loss = l1_sum_cpu(pred.data<std::uint16_t>(), target.data<std::uint16_t>(), rows, cols,
                         start, comp);
    }
    if (extras.reduced != nullptr) {
      *extras.reduced->data<float>() = *loss;
      scale_scalar(*extras.reduced, extras.reduced_factor);
    }
    if (const WindowCountArgs* c = extras.count) {
      window_count_micro_batch(*c->counts, nullptr, c->samples, c->elements, *c->loss_scale,
                               *c->inv_loss_scale, c->rule);
    }
    return;
  }
#if GRADACCUM_WITH_CUDA
  cuda::L1Extras t;
  if (extras.compensation != nullptr) t.compensation = extras.compensation->data<float>();
  if (extras.reduced != nullptr) {
    t.reduced = extras.reduced->data<float>();
    t.reduced_factor = extras.reduced_factor;
  }
  if (const WindowCountArgs* c = extras.count) {
    t.counts = static_cast<WindowCounts*>(c->counts->data());
    t.samples = c->samples;
    t.elements = c->elements;
    t.loss_scale = c->loss_scale->data<float>();
    t.inv_loss_scale = c->inv_loss_scale->data<float>();
    t.rule = c->rule;
  }
  if (pred.dtype() == DType::f32) {
    cuda::l1_loss_forward_f32(pred.data<float>(), target.data<float>(), loss_sum.data<float>(),
                              rows, cols, accumulate, t);
  } else {
    cuda::l1_loss_forward_f16(pred.data<std::uint16_t>(), target.data<std::uint16_t>(),
                              loss_sum.data<float>(), rows, cols, accumulate, t);
  }
#else
  GA_FAIL(op << ": " << pred.str() << " is on the CUDA device, but gradaccum was built without "
             << "CUDA");
#endif
}

void l1_loss_backward(const Tensor& pred, const Tensor& target, float factor, const Tensor* scale,
                      Tensor& dpred, GradientMode mode) {
  if (mode == GradientMode::Ignore) return;
  constexpr const char* op = "l1_loss_backward";
  check_inputs(op, pred, target);
  detail::check_defined(op, dpred, "dpred");
  detail::check_same_dtype(op, dpred, "dpred", pred, "pred");
  detail::check_same_shape(op, dpred, "dpred", pred, "pred");
  detail::check_same_device(op, dpred, "dpred", pred, "pred");
  if (scale != nullptr) detail::check_scalar_f32(op, *scale, "scale", pred, "pred");
  const bool accumulate = mode == GradientMode::Accumulate;
  if (pred.device() == Device::CPU) {
    const float coef = scale != nullptr ? factor * *scale->data<float>() : factor;
    l1_backward_cpu(pred, target, coef, dpred, accumulate);
    return;
  }
#if GRADACCUM_WITH_CUDA
  const float* s = scale != nullptr ? scale->data<float>() : nullptr;
  if (pred.dtype() == DType::f32) {
    cuda::l1_loss_backward_f32(pred.data<float>(), target.data<float>(), factor, s,
                               dpred.data<float>(), pred.numel(), accumulate);
  } else {
    cuda::l1_loss_backward_f16(pred.data<std::uint16_t>(), target.data<std::uint16_t>(), factor, s,
                               dpred.data<std::uint16_t>(), pred.numel(), accumulate);
  }
#else
  GA_FAIL(op << ": " << pred.str() << " is on the CUDA device, but gradaccum was built without "
             << "CUDA");
#endif
}

}  // namespace gradaccum
