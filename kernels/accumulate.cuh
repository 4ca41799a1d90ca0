// CUDA launchers of the accumulation kernels (kernels/accumulate.cu). Plain C++ types: f16 data
// is passed as its 16-bit patterns; scale is an f32 on the device or null; nonfinite and
// skip_if are NonFiniteFlag words on the device or null. n may be 0 (nothing is launched).
#pragma once

#include <cstdint>

namespace gradaccum::cuda {

struct AccumulateFlags {
  const float* scale = nullptr;
  std::uint32_t* nonfinite = nullptr;
  const std::uint32_t* skip_if = nullptr;
};

void accumulate_f32_f32(float* acc, const float* g, std::int64_t n, const AccumulateFlags& f);
void accumulate_f32_f16(float* acc, const std::uint16_t* g, std::int64_t n,
                        const AccumulateFlags& f);
void accumulate_f16_f16(std::uint16_t* acc, const std::uint16_t* g, std::int64_t n,
                        const AccumulateFlags& f);
// Kahan: (acc, comp) += g with comp the part of the sum acc is missing (sum ~ acc + comp).
void accumulate_kahan_f32(float* acc, float* comp, const float* g, std::int64_t n,
                          const AccumulateFlags& f);
void accumulate_kahan_f16(float* acc, float* comp, const std::uint16_t* g, std::int64_t n,
                          const AccumulateFlags& f);

// Several f32 tensors, one launch per eight of them; each element exactly as the one-tensor
// kernels compute it. comp: null or set, per entry (Kahan).
struct MultiEntry {
  float* acc;
  float* comp;
  const float* g;
  std::int64_t n;
  bool scaled;  // f.scale applies to this entry
};
void accumulate_multi_f32(const MultiEntry* entries, int count, const AccumulateFlags& f);
void check_finite_multi_f32(const float* const* tensors, const std::int64_t* n, int count,
                            std::uint32_t* flag);

void check_finite_f32(const float* t, std::int64_t n, std::uint32_t* flag);
void check_finite_f16(const std::uint16_t* t, std::int64_t n, std::uint32_t* flag);

}  // namespace gradaccum::cuda
