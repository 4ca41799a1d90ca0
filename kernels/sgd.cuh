// CUDA launcher of the fused SGD update (kernels/sgd.cu). Plain C++ types; optional pointers
// may be null. The current stream.
#pragma once

#include <cstdint>

namespace gradaccum::cuda {

struct SgdPointers {
  float* param = nullptr;
  const float* grad = nullptr;
  const float* grad_comp = nullptr;        // optional
  const float* grad_scale = nullptr;       // optional device scalar
  float* momentum_buf = nullptr;           // required iff momentum != 0
  std::uint16_t* param_f16 = nullptr;      // optional
  const std::uint32_t* skip_if = nullptr;  // optional flag word
  std::int64_t n = 0;
  bool first_step = false;
};

// The hyper-parameters as the kernel uses them (see kernels/sgd.cpp: to_kernel_hyper).
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
