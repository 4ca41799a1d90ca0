// The pointers every fused optimizer update hands its CUDA launcher (kernels/sgd.cuh,
// kernels/adamw.cuh derive their own from it). Plain C++ types; optional pointers may be null.
#pragma once

#include <cstdint>

namespace gradaccum::cuda {

struct UpdatePointers {
  float* param = nullptr;
  const float* grad = nullptr;
  const float* grad_comp = nullptr;        // optional
  const float* grad_scale = nullptr;       // optional device scalar
  std::uint16_t* param_f16 = nullptr;      // optional
  const std::uint32_t* skip_if = nullptr;  // optional flag word
  std::int64_t n = 0;
};

}  // namespace gradaccum::cuda
