// CUDA launcher of the fused SGD update (kernels/sgd.cu). Plain C++ types; optional pointers
// may be null. The current stream.
#pragma once

#include <cstdint>

#include "kernels/optimizer_update.cuh"

namespace gradaccum::cuda {

struct SgdPointers : UpdatePointers {
  float* momentum_buf = nullptr;  // required iff momentum != 0
  bool first_step = false;
};

// The hyper-parameters as the kernel (and the CPU loop) uses them (kernels/sgd.cpp: to_scalars).
struct SgdKernelHyper {
  float neg_lr = 0.0f;  // -lr
  float momentum = 0.0f;
  float damp_alpha = 1.0f;  // float(1 - dampening), PyTorch's alpha of buf.add_
  float weight_decay = 0.0f;
  bool nesterov = false;
};

void sgd_update(const SgdPointers& ptrs, const SgdKernelHyper& hyper);
// Several parameters, one launch per eight; each element exactly as sgd_update computes it.
void sgd_update_multi(const SgdPointers* ptrs, int count, const SgdKernelHyper& hyper);

}  // namespace gradaccum::cuda
