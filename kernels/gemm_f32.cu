// The hand-written fp32 GEMM of the linear layer (see kernels/gemm_problem.h for the problem).
//
// A 128x128 block tile, 256 threads, each an 8x8 register tile (rows ty*4 + {0..3} and
// 64 + ty*4 + {0..3}, columns likewise with tx), k in steps of 8 through shared memory, double
// buffered: the next k tile is loaded into registers (16-byte loads where the layout allows)
// while the current one is multiplied.
//
// Order: every output element is ONE chain, acc = __fmaf_rn(A(m, k), B(k, n), acc) for
// k = 0 .. K-1 in increasing order, starting from the epilogue's init (the stored C when
// accumulating, else 0), with no padded k step ever applied (the last, partial k tile runs
// exactly K mod 8 steps). K is never split over threads or blocks. This is bit-for-bit the chain
// of cpu::gemm_handwritten. The row sums (bias gradient) are one chain per row as well, run by
// the first column of blocks while the tiles of A pass through shared memory.
#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"
#include "core/launch.cuh"
#include "kernels/gemm.cuh"
#include "kernels/gemm_epilogue.cuh"

namespace gradaccum::cuda {
namespace {

constexpr int kBM = 128;
constexpr int kBN = 128;
constexpr int kBK = 8;
constexpr int kThreads = 256;
constexpr int kPad = 4;  // shared rows of 132 floats: conflict-free transposed stores
constexpr int kLd = kBM + kPad;
static_assert(kBM == kBN, "the load mapping assumes square block tiles");
static_assert(kBM * kBK == 4 * kThreads, "each thread loads 4 elements of each operand tile");

using F32Args = detail::KernelArgs<float, float>;

// Four consecutive elements src[0..3] of one line of an operand tile, at positions first ..
// first + 3 of a dimension of size `limit`: one 16-byte load when allowed and all four are in
// range, else one by one with zeros outside (line_ok false: the whole line is outside).
__device__ __forceinline__ void load4(const float* src, bool vec, bool line_ok, int first,
                                      int limit, float v[4]) {
  if (vec && line_ok && first + 3 < limit) {
    const float4 q = *reinterpret_cast<const float4*>(src);
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
    return;
  }
#pragma unroll
  for (int e = 0; e < 4; ++e)
    v[e] = (line_ok && first + e < limit) ? src[e] : 0.0f;
}

// Loads this thread's 4 elements of the k tile starting at k0 of an operand X(r, k) (r = m for
// A, n for B; R = M or N) into v, returning the smem position where they go: for a k-major
// operand x[k*R + r] four consecutive r of one k; else x[r*K + k] four consecutive k of one r.
template <bool KMAJOR>
__device__ __forceinline__ void load_tile(const float* x, int R, int K, int r0, int k0, bool vec,
                                          float v[4]) {
  const int tid = static_cast<int>(threadIdx.x);
  if (KMAJOR) {
    const int k = k0 + tid / 32;
    const int r = r0 + (tid % 32) * 4;
    load4(x + static_cast<std::size_t>(k) * R + r, vec, k < K, r, R, v);
  } else {
    const int r = r0 + tid / 2;
    const int k = k0 + (tid % 2) * 4;
    load4(x + static_cast<std::size_t>(r) * K + k, vec, r < R, k, K, v);
  }
}

// Stores the 4 loaded elements into the shared tile s[k][r] (r contiguous).
template <bool KMAJOR>
__device__ __forceinline__ void store_tile(float* s, const float v[4]) {
  const int tid = static_cast<int>(threadIdx.x);
  if (KMAJOR) {
    *reinterpret_cast<float4*>(s + (tid / 32) * kLd + (tid % 32) * 4) =
        make_float4(v[0], v[1], v[2], v[3]);
  } else {
    const int r = tid / 2;
    const int k = (tid % 2) * 4;
#pragma unroll
    for (int e = 0; e < 4; ++e)
      s[(k + e) * kLd + r] = v[e];
  }
}

// One k step of the 8x8 register tile.
__device__ __forceinline__ void fma_step(const float* as, const float* bs, int kk, int ty, int tx,
                                         float acc[8][8]) {
  const float4 a0 = *reinterpret_cast<const float4*>(as + kk * kLd + ty * 4);
  const float4 a1 = *reinterpret_cast<const float4*>(as + kk * kLd + 64 + ty * 4);
  const float4 b0 = *reinterpret_cast<const float4*>(bs + kk * kLd + tx * 4);
  const float4 b1 = *reinterpret_cast<const float4*>(bs + kk * kLd + 64 + tx * 4);
  const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
  const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
#pragma unroll
    for (int j = 0; j < 8; ++j)
      acc[i][j] = __fmaf_rn(a[i], b[j], acc[i][j]);
  }
}

// Row (or column) offset within the block tile of register index i of thread coordinate t.
__device__ __forceinline__ int tile_offset(int t, int i) {
  return (i / 4) * 64 + t * 4 + i % 4;
}

template <bool A_KMAJOR, bool B_KMAJOR>
__global__ void __launch_bounds__(kThreads, 2) gemm_f32_kernel(F32Args p) {
  GA_DYNAMIC_SHARED(float4, gemm_f32_smem);
  float* const smem = reinterpret_cast<float*>(gemm_f32_smem);
  // Buffer b of A's tiles at smem + b * kStage, of B's at smem + (2 + b) * kStage.
  constexpr int kStage = kBK * kLd;

  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % 16;
  const int ty = tid / 16;
  const int m0 = static_cast<int>(blockIdx.x) * kBM;
  const int n0 = static_cast<int>(blockIdx.y) * kBN;

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + tile_offset(ty, i);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int n = n0 + tile_offset(tx, j);
      acc[i][j] = (m < p.M && n < p.N) ? p.ep.init(m, n) : 0.0f;
    }
  }
  // Row sums: the first column of blocks, one thread per row of the tile.
  const bool row_sums = p.rs.sum != nullptr && blockIdx.y == 0 && tid < kBM;
  float rsum = (row_sums && m0 + tid < p.M) ? p.rs.init(m0 + tid) : 0.0f;

  const int tiles = (p.K + kBK - 1) / kBK;
  float va[4], vb[4];
  if (tiles > 0) {
    load_tile<A_KMAJOR>(p.a, p.M, p.K, m0, 0, p.vec_a, va);
    load_tile<B_KMAJOR>(p.b, p.N, p.K, n0, 0, p.vec_b, vb);
    store_tile<A_KMAJOR>(smem, va);
    store_tile<B_KMAJOR>(smem + 2 * kStage, vb);
  }
  __syncthreads();
  for (int t = 0; t < tiles; ++t) {
    const int buf = t & 1;
    const float* const as = smem + buf * kStage;
    const float* const bs = smem + (2 + buf) * kStage;
    const bool more = t + 1 < tiles;
    if (more) {
      load_tile<A_KMAJOR>(p.a, p.M, p.K, m0, (t + 1) * kBK, p.vec_a, va);
      load_tile<B_KMAJOR>(p.b, p.N, p.K, n0, (t + 1) * kBK, p.vec_b, vb);
    }
    const int kt = min(kBK, p.K - t * kBK);  // the last tile runs only the real k steps
    if (kt == kBK) {
#pragma unroll
      for (int kk = 0; kk < kBK; ++kk)
        fma_step(as, bs, kk, ty, tx, acc);
    } else {
      for (int kk = 0; kk < kt; ++kk)
        fma_step(as, bs, kk, ty, tx, acc);
    }
    if (row_sums) {
      for (int kk = 0; kk < kt; ++kk)
        rsum = __fadd_rn(rsum, as[kk * kLd + tid]);
    }
    if (more) {
      store_tile<A_KMAJOR>(smem + (buf ^ 1) * kStage, va);
      store_tile<B_KMAJOR>(smem + (2 + (buf ^ 1)) * kStage, vb);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + tile_offset(ty, i);
    if (m >= p.M) continue;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int n = n0 + tile_offset(tx, j);
      if (n < p.N) p.ep(m, n, acc[i][j]);
    }
  }
  if (row_sums && m0 + tid < p.M) p.rs.finish(m0 + tid, rsum);
}

}  // namespace

void gemm_f32(const GemmProblem& p) {
  GA_CHECK(!p.half && !p.c_half, "gemm_f32 takes f32 operands");
  GA_CHECK(p.a_kmajor ? p.b_kmajor : true,
           "gemm_f32: a k-major A needs a k-major B (the dw product)");
  if (p.M == 0) return;
  const F32Args args = detail::make_kernel_args<float, float>(p, 4);  // 16 bytes: 4 floats

  // Row tiles on x (the larger limit: rows can be many), column tiles on y; at least one column
  // of blocks even for N = 0, which still computes the row sums.
  const dim3 grid(static_cast<unsigned>((p.M + kBM - 1) / kBM),
                  static_cast<unsigned>(std::max<std::int64_t>(1, (p.N + kBN - 1) / kBN)));
  const dim3 block(kThreads);
  const std::size_t smem = 4u * kBK * kLd * sizeof(float);
  if (!p.a_kmajor && !p.b_kmajor) {
    GA_LAUNCH((gemm_f32_kernel<false, false>), grid, block, smem, ::gradaccum::current_stream(),
              args);
  } else if (!p.a_kmajor) {
    GA_LAUNCH((gemm_f32_kernel<false, true>), grid, block, smem, ::gradaccum::current_stream(),
              args);
  } else {
    GA_LAUNCH((gemm_f32_kernel<true, true>), grid, block, smem, ::gradaccum::current_stream(),
              args);
  }
}

}  // namespace gradaccum::cuda
