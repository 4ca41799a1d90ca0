// Device-side pieces shared by the GEMM kernels (gemm_f32.cu, gemm_f16.cu, gemm_cublas.cu): the
// per-element epilogue and the row sums (bias gradient), exactly as kernels/gemm_problem.h
// specifies them, and the hand-written kernels' argument block. Include from .cu files only.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/elementwise.cuh"
#include "kernels/gemm_problem.h"

namespace gradaccum::cuda::detail {

__device__ __forceinline__ float to_f32(float v) {
  return v;
}
__device__ __forceinline__ float to_f32(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ void store_f32(float* p, std::size_t i, float v) {
  p[i] = v;
}
__device__ __forceinline__ void store_f32(__half* p, std::size_t i, float v) {
  p[i] = __float2half_rn(v);
}

// The epilogue of C[M, N]. TIn: the operands' type (bias and mask too); TC: C's type.
template <typename TIn, typename TC>
struct Epilogue {
  TC* c;
  const TIn* bias;  // [N] or null
  const TIn* mask;  // [M, N] or null
  float* comp;      // [M, N] Kahan compensation or null (TC = float)
  int N;
  bool accumulate;
  bool relu;

  // The chain's starting value: the stored C when accumulating without Kahan, else 0.
  __device__ __forceinline__ float init(int m, int n) const {
    return accumulate && comp == nullptr ? to_f32(c[static_cast<std::size_t>(m) * N + n]) : 0.0f;
  }

  __device__ __forceinline__ void operator()(int m, int n, float v) const {
    const std::size_t idx = static_cast<std::size_t>(m) * N + n;
    if (mask != nullptr && !(to_f32(mask[idx]) > 0.0f)) {
      if (!accumulate) store_f32(c, idx, 0.0f);
      return;
    }
    if (bias != nullptr) v = __fadd_rn(v, to_f32(bias[n]));
    if (relu) v = v < 0.0f ? 0.0f : v;
    if (comp != nullptr) {
      float* cf = reinterpret_cast<float*>(c);
      if (accumulate) {
        ew::kahan_add(cf[idx], comp[idx], v);
      } else {
        cf[idx] = v;
        comp[idx] = 0.0f;
      }
      return;
    }
    store_f32(c, idx, v);
  }
};

// Row sums of A (the bias gradient): sum[m] (mode) Σ_k A(m, k), one chain per m.
struct RowSum {
  float* sum;   // [M] or null: no row sums
  float* comp;  // [M] Kahan compensation or null
  bool accumulate;

  __device__ __forceinline__ float init(int m) const {
    return accumulate && comp == nullptr ? sum[m] : 0.0f;
  }
  __device__ __forceinline__ void finish(int m, float s) const {
    if (comp == nullptr) {
      sum[m] = s;
    } else if (accumulate) {
      ew::kahan_add(sum[m], comp[m], s);
    } else {
      sum[m] = s;
      comp[m] = 0.0f;
    }
  }
};

template <typename TIn, typename TC>
Epilogue<TIn, TC> make_epilogue(const GemmProblem& p) {
  Epilogue<TIn, TC> e{};
  e.c = static_cast<TC*>(p.c);
  e.bias = static_cast<const TIn*>(p.bias);
  e.mask = static_cast<const TIn*>(p.mask);
  e.comp = p.comp;
  e.N = static_cast<int>(p.N);
  e.accumulate = p.accumulate;
  e.relu = p.relu;
  return e;
}

inline RowSum make_row_sum(const GemmProblem& p) {
  return RowSum{p.row_sum, p.row_sum_comp, p.accumulate};
}

inline bool aligned16(const void* ptr) {
  return (reinterpret_cast<std::uintptr_t>(ptr) & 15u) == 0;
}

// What a hand-written GEMM kernel is given: the operands and sizes, whether 16-byte loads are
// possible along each operand's contiguous dimension (a tile row of `lanes` elements then never
// straddles an alignment boundary), the epilogue and the row sums.
template <typename TIn, typename TC>
struct KernelArgs {
  const TIn* a;
  const TIn* b;
  int M, N, K;
  bool vec_a;
  bool vec_b;
  Epilogue<TIn, TC> ep;
  RowSum rs;
};

template <typename TIn, typename TC>
KernelArgs<TIn, TC> make_kernel_args(const GemmProblem& p, int lanes) {
  KernelArgs<TIn, TC> args{};
  args.a = static_cast<const TIn*>(p.a);
  args.b = static_cast<const TIn*>(p.b);
  args.M = static_cast<int>(p.M);
  args.N = static_cast<int>(p.N);
  args.K = static_cast<int>(p.K);
  args.vec_a = aligned16(p.a) && (p.a_kmajor ? p.M : p.K) % lanes == 0;
  args.vec_b = aligned16(p.b) && (p.b_kmajor ? p.N : p.K) % lanes == 0;
  args.ep = make_epilogue<TIn, TC>(p);
  args.rs = make_row_sum(p);
  return args;
}

}  // namespace gradaccum::cuda::detail
