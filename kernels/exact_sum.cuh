// CUDA launchers of the exact-sum kernels (kernels/exact_sum.cu). limbs: n x 9 uint64 on the
// device, limb-major; g f32, or f16 as its 16-bit patterns; scale an f32 on the device or null;
// nonfinite and skip_if NonFiniteFlag words on the device or null. n may be 0.
#pragma once

#include <cstdint>

#include "kernels/accumulate.cuh"  // AccumulateFlags: scale, nonfinite, skip_if

namespace gradaccum::cuda {

void exact_add_f32(std::uint64_t* limbs, const float* g, std::int64_t n, const AccumulateFlags& f);
void exact_add_f16(std::uint64_t* limbs, const std::uint16_t* g, std::int64_t n,
                   const AccumulateFlags& f);
void exact_round(const std::uint64_t* limbs, float* out, std::int64_t n);

}  // namespace gradaccum::cuda
