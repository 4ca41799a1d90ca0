// CUDA launcher of the fused AdamW update (kernels/adamw.cu). Plain C++ types; optional pointers
// may be null. The current stream.
#pragma once

#include "kernels/optimizer_update.cuh"

namespace gradaccum::cuda {

struct AdamwPointers : UpdatePointers {
  float* exp_avg = nullptr;         // required
  float* exp_avg_sq = nullptr;      // required
  float* max_exp_avg_sq = nullptr;  // required iff amsgrad
};

// The scalars as the kernel (and the CPU loop) uses them, computed in double and rounded to f32
// on the host (see kernels/adamw.h and kernels/adamw.cpp: to_scalars).
struct AdamwKernelHyper {
  float decay = 1.0f;  // float(1 - lr * weight_decay)
  float beta1 = 0.0f;
  float one_minus_beta1 = 1.0f;  // float(1 - beta1), PyTorch's alpha of exp_avg.add_
  float beta2 = 0.0f;
  float one_minus_beta2 = 1.0f;  // float(1 - beta2), PyTorch's value of exp_avg_sq.addcmul_
  float neg_step_size = 0.0f;    // float(-(lr / (1 - beta1^step)))
  float bc2_sqrt = 1.0f;         // float(sqrt(1 - beta2^step))
  float eps = 0.0f;
  bool amsgrad = false;
};

void adamw_update(const AdamwPointers& ptrs, const AdamwKernelHyper& hyper);
// Several parameters, one launch per eight; each element exactly as adamw_update computes it.
void adamw_update_multi(const AdamwPointers* ptrs, int count, const AdamwKernelHyper& hyper);

}  // namespace gradaccum::cuda
