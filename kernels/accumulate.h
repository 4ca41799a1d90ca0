// In-place gradient accumulation for buffers no GEMM produces:
// acc_f32 += g_f32, acc_f32 += g_f16, acc_f16 += g_f16 (kept on purpose: the stability suite
// shows why it is a bad idea), and Kahan-compensated (acc, comp) += g.
//
// Arithmetic (identical on the CPU and CUDA, bit for bit; every operation rounds to nearest
// even, no fused multiply-add):
//   x = g, or x = f32(g * *scale) with a scale (g widened exactly from f16 first)
//   f32 acc:         acc = f32(acc + x)
//   f16 acc (f16 g): fp16 arithmetic, acc = half(acc + x), the sum of two halves rounded once
//                    (what the device's __hadd does); with a scale, x = half(f32(g * *scale)),
//                    i.e. the scaled gradient is rounded to f32 and then to half first.
//   Kahan (f32 acc and comp, g f32 or f16):
//                    y = x + comp; t = acc + y; comp = y - (t - acc); acc = t
//     Sign convention: comp holds the part of the sum that acc is missing, so the best estimate
//     of the accumulated sum is acc + comp (comp is the negative of the "c" of the textbook
//     formulation). Start with comp = 0. sgd_update's grad_comp uses it as g = grad + comp.
// Elementwise, so the result does not depend on how the work is split over threads or blocks.
// An f16 acc takes only an f16 g; Kahan needs an f32 acc. acc may be g (acc += acc).
#pragma once

#include <vector>

#include "core/tensor.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum {

struct AccumulateOptions {
  // Kahan: the f32 compensation buffer (same shape as acc, acc must be f32; may not be acc).
  Tensor* compensation = nullptr;
  // f32 [1] on acc's device: g is multiplied by *scale before it is added (read on the device).
  const Tensor* scale = nullptr;
  // Raised when a resulting value of acc is non-finite (inf or NaN). Never cleared here.
  NonFiniteFlag* nonfinite = nullptr;
  // When given and raised, the call adds nothing and raises nothing (a dropped micro-batch,
  // decided on the device: the kernel reads the flag word, there is no host synchronisation).
  const NonFiniteFlag* skip_if = nullptr;
};

// All tensors and flags on one device; acc and g (and comp) of the same shape. Throws Error
// naming the argument and what was expected otherwise. Zero-size tensors launch nothing.
void accumulate(Tensor& acc, const Tensor& g, const AccumulateOptions& options = {});

// Raises `flag` if any element of t (f32 or f16) is non-finite (for gradients a GEMM wrote).
// t and flag on one device.
void check_finite(const Tensor& t, NonFiniteFlag& flag);

// ---- several tensors at once: a window's parameters in one launch (one graph node) ----
// Each element exactly as the one-tensor calls compute it; the same checks, every target
// validated before anything runs. On CUDA with every tensor f32, one launch per eight tensors;
// otherwise (the CPU, f16) one call per tensor.
struct AccumulateTarget {
  Tensor* acc = nullptr;
  const Tensor* g = nullptr;
  Tensor* compensation = nullptr;  // Kahan, for this target
  bool apply_scale = true;         // options.scale multiplies this target's g
};
// options.compensation must be null (each target has its own); scale, nonfinite and skip_if
// serve every target.
void accumulate(const std::vector<AccumulateTarget>& targets, const AccumulateOptions& options);
void check_finite(const std::vector<const Tensor*>& tensors, NonFiniteFlag& flag);

}  // namespace gradaccum
