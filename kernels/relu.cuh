// CUDA launchers of the ReLU kernels (kernels/relu.cu). Plain C++ types: f16 data is passed as
// its 16-bit patterns. n may be 0 (nothing is launched). Default stream.
#pragma once

#include <cstdint>

namespace gradaccum::cuda {

void relu_forward_f32(const float* x, float* y, std::int64_t n);
void relu_forward_f16(const std::uint16_t* x, std::uint16_t* y, std::int64_t n);

// dx = g or dx += g (accumulate), g = y > 0 ? dy : 0. The f16 sum is one fp16 addition.
void relu_backward_f32(const float* dy, const float* y, float* dx, std::int64_t n, bool accumulate);
void relu_backward_f16(const std::uint16_t* dy, const std::uint16_t* y, std::uint16_t* dx,
                       std::int64_t n, bool accumulate);

}  // namespace gradaccum::cuda
