// The per-element arithmetic of kernels/batch_norm.h, shared by the CPU path and the CUDA
// kernels so that both compute the same bits (each operation rounded to f32; the library and the
// device code are built without contraction into fused multiply-adds). Private to kernels/.
#pragma once

#include <cmath>

#if defined(__host__) && defined(__device__)
#define GA_BN_HD __host__ __device__
#else
#define GA_BN_HD
#endif

namespace gradaccum::bn_rules {

GA_BN_HD inline float xhat(float x, float mean, float invstd) {
  return (x - mean) * invstd;
}
GA_BN_HD inline float squared_deviation(float x, float mean) {
  const float d = x - mean;
  return d * d;
}
GA_BN_HD inline float invstd(float var, float eps) {
  return 1.0f / sqrtf(var + eps);
}
GA_BN_HD inline float forward(float x, float mean, float invstd, bool affine, float w, float b) {
  const float h = xhat(x, mean, invstd);
  return affine ? h * w + b : h;
}
// dx with the window's (or the batch's) sums: mean_dy = Σdy / count, mean_dy_xhat = Σdy·x̂ / count,
// scale = weight · invstd. Constant statistics: both means 0 (then dx = dy · scale exactly).
GA_BN_HD inline float backward_input(float dy, float h, float mean_dy, float mean_dy_xhat,
                                     float scale) {
  return ((dy - mean_dy) - h * mean_dy_xhat) * scale;
}
GA_BN_HD inline float running(float r, float stat, float momentum) {
  return (1.0f - momentum) * r + momentum * stat;
}

}  // namespace gradaccum::bn_rules
