// In-place gradient accumulation for buffers no GEMM produces:
// acc_f32 += g_f32, acc_f32 += g_f16, acc_f16 += g_f16 (kept on purpose: the stability suite
// shows why it is a bad idea), and Kahan-compensated (acc, comp) += g.
#pragma once

#include "core/tensor.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum {

struct AccumulateOptions {
  // Kahan: the f32 compensation buffer (same shape as acc, acc must be f32).
  Tensor* compensation = nullptr;
  // f32 [1] on acc's device: g is multiplied by *scale before it is added (read on the device).
  const Tensor* scale = nullptr;
  // Raised when a resulting value is non-finite.
  NonFiniteFlag* nonfinite = nullptr;
  // When given and raised, the call adds nothing (a dropped micro-batch, decided on the device).
  const NonFiniteFlag* skip_if = nullptr;
};

void accumulate(Tensor& acc, const Tensor& g, const AccumulateOptions& options = {});

// Raises `flag` if any element of t is non-finite (for gradients a GEMM wrote).
void check_finite(const Tensor& t, NonFiniteFlag& flag);

}  // namespace gradaccum
