// The GEMM behind every linear-layer product, shared by the CPU and CUDA implementations.
//
// C[M, N] (mode) A[M, K] · B[K, N], dense row-major operands, where
//   A(m, k) = a[m*K + k] (a_kmajor false) or a[k*M + m] (a_kmajor true),
//   B(k, n) = b[n*K + k] (b_kmajor false) or b[k*N + n] (b_kmajor true):
//   forward  y = x·wᵀ : A = x [rows, in], B = w [out, in] (n-major); M = rows, N = out, K = in.
//   dx       = dy·w   : A = dy [rows, out], B = w [out, in] (k-major); M = rows, N = in, K = out.
//   dw       = dyᵀ·x  : A = dy (k-major), B = x [rows, in] (k-major); M = out, N = in, K = rows.
//
// The hand-written chain of each output element (fp32: identical bits on the CPU and CUDA):
//   acc = init; for k = 0 .. K-1 in order: acc = fma(A(m, k), B(k, n), acc)
// init is the stored C when accumulating without Kahan, else 0. Then the epilogue:
//   masked out (mask given and !(mask > 0)): C keeps its value (accumulate) or becomes 0;
//   else v = acc (+ bias[n]) (ReLU: v < 0 ? 0 : v), then C = v (rounded once to f16 for an f16
//   C); with a Kahan buffer: accumulate Kahan-adds v to (C, comp) (kahan_add), overwrite stores
//   C = v, comp = 0.
// Row sums (the bias gradient): row_sum[m] (mode) Σ_k A(m, k) as one chain per m in k order,
//   s = init; s = s + A(m, k) (i.e. fma(A, 1, s)), with the same Kahan handling.
// The fp16 tensor-core kernel differs inside each k16 step (see kernels/gemm_f16.cu).
#pragma once

#include <cstdint>

namespace gradaccum {

struct GemmProblem {
  std::int64_t M = 0, N = 0, K = 0;
  const void* a = nullptr;
  bool a_kmajor = false;
  const void* b = nullptr;
  bool b_kmajor = false;
  bool half = false;  // a, b, bias and mask hold f16 bit patterns (else f32)
  void* c = nullptr;
  bool c_half = false;  // c holds f16 bit patterns (then no comp and no row sums)
  bool accumulate = false;
  const void* bias = nullptr;  // [N], a's dtype, added after the chain
  bool relu = false;
  const void* mask = nullptr;     // [M, N], a's dtype: only elements with mask > 0 get the product
  float* comp = nullptr;          // [M, N] f32 Kahan compensation of c (c is f32)
  float* row_sum = nullptr;       // [M] f32, optional: row sums of A (the bias gradient)
  float* row_sum_comp = nullptr;  // [M] f32 Kahan compensation of row_sum
};

// The Kahan step (the convention of kernels/accumulate.h): the true sum is acc + comp.
//   y' = y + comp; t = acc + y'; comp = y' - (t - acc); acc = t.
inline void kahan_add(float& acc, float& comp, float y) {
  const float yc = y + comp;
  const float t = acc + yc;
  comp = yc - (t - acc);
  acc = t;
}

}  // namespace gradaccum
