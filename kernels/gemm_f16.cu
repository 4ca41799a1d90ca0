// The fp16 GEMM of the linear layer on tensor cores: f16 operands, fp32 accumulation
// (mma.m16n8k16), C in f16 (forward, dx; rounded once) or f32 (dw). Problem: gemm_problem.h.
//
// A 128x128 block tile, 256 threads = 8 warps as 2 (m) x 4 (n), each warp 64x32 outputs
// (4 x 4 mma tiles of 16x8); k in tiles of 32 through shared memory, two stages filled with
// cp.async (16-byte chunks where the layout and bounds allow, else guarded element loads with
// zero fill). Fragments come from shared memory with ldmatrix (.trans for k-major operands).
//
// Order: each output element's accumulator starts from the epilogue's init (the stored C when
// accumulating, else 0) and goes through one mma per k16 step, k16 steps in increasing k, never
// split over warps or blocks. Within one k16 step the hardware's summation order (and internal
// precision) is unspecified, so the result is deterministic, but not bit-equal to the CPU's
// per-k fma chain. Consequence for the determinism guarantee: dw over a micro-batch split is bit
// identical when every split point is a multiple of 16 rows (the k16 grouping is then the same);
// padded k (K not a multiple of 16) enters as zero products. The row sums (db) are exact per-k
// chains like the fp32 kernel's, so db is bit-identical to the CPU for any split.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"
#include "core/launch.cuh"
#include "kernels/gemm.cuh"
#include "kernels/gemm_epilogue.cuh"
#include "kernels/ptx.cuh"

namespace gradaccum::cuda {
namespace {

constexpr int kBM = 128;
constexpr int kBN = 128;
constexpr int kBK = 32;
constexpr int kThreads = 256;
constexpr int kSkew = 8;  // halves of padding per shared row: 16-byte aligned, fewer conflicts
// One stage of one operand: [128][32 + 8] (r-major) or [32][128 + 8] (k-major) halves.
constexpr int kStage = std::max(kBM * (kBK + kSkew), kBK*(kBM + kSkew));
static_assert(kBM == kBN, "one stage size serves both operands");

template <typename TC>
using F16Args = detail::KernelArgs<__half, TC>;

// Shared index of element (r, k) of a stage: r-major [r][k] or k-major [k][r].
template <bool KMAJOR>
__device__ __forceinline__ int sidx(int r, int k) {
  return KMAJOR ? k * (kBM + kSkew) + r : r * (kBK + kSkew) + k;
}

// Loads the k tile at k0 of operand X(r, k) (rows r0 .. r0+127) into stage s: 512 chunks of 8
// halves along the contiguous dimension, two per thread.
template <bool KMAJOR>
__device__ __forceinline__ void load_stage(__half* s, const __half* x, int R, int K, int r0, int k0,
                                           bool vec) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int c = static_cast<int>(threadIdx.x) + h * kThreads;
    const int rr = KMAJOR ? (c % 16) * 8 : c / 4;
    const int kk = KMAJOR ? c / 16 : (c % 4) * 8;
    const int r = r0 + rr, k = k0 + kk;
    __half* dst = s + sidx<KMAJOR>(rr, kk);
    const bool full = KMAJOR ? (k < K && r + 8 <= R) : (r < R && k + 8 <= K);
    if (vec && full) {
      cp_async_16(dst, x + (KMAJOR ? static_cast<std::size_t>(k) * R + r
                                   : static_cast<std::size_t>(r) * K + k));
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int re = KMAJOR ? r + e : r, ke = KMAJOR ? k : k + e;
        dst[e] = (re < R && ke < K) ? x[KMAJOR ? static_cast<std::size_t>(ke) * R + re
                                               : static_cast<std::size_t>(re) * K + ke]
                                    : __float2half_rn(0.0f);
      }
    }
  }
}

template <bool A_KMAJOR, bool B_KMAJOR, typename TC>
__global__ void __launch_bounds__(kThreads, 1) gemm_f16_kernel(F16Args<TC> p) {
  GA_DYNAMIC_SHARED(uint4, gemm_f16_smem);
  __half* const smem = reinterpret_cast<__half*>(gemm_f16_smem);
  // Stage b of A at smem + b * kStage, of B at smem + (2 + b) * kStage.

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int wm = warp / 4;  // 0..1: rows wm*64 .. +63 of the block tile
  const int wn = warp % 4;  // 0..3: columns wn*32 .. +31
  const int group = lane / 4, tig = lane % 4;
  const int m0 = static_cast<int>(blockIdx.x) * kBM;
  const int n0 = static_cast<int>(blockIdx.y) * kBN;

  float acc[4][4][4];
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int m = m0 + wm * 64 + mi * 16 + group + (r / 2) * 8;
        const int n = n0 + wn * 32 + ni * 8 + tig * 2 + (r % 2);
        acc[mi][ni][r] = (m < p.M && n < p.N) ? p.ep.init(m, n) : 0.0f;
      }
    }
  }
  const bool row_sums = p.rs.sum != nullptr && blockIdx.y == 0 && tid < kBM;
  float rsum = (row_sums && m0 + tid < p.M) ? p.rs.init(m0 + tid) : 0.0f;

  const int tiles = (p.K + kBK - 1) / kBK;
  if (tiles > 0) {
    load_stage<A_KMAJOR>(smem, p.a, p.M, p.K, m0, 0, p.vec_a);
    load_stage<B_KMAJOR>(smem + 2 * kStage, p.b, p.N, p.K, n0, 0, p.vec_b);
  }
  cp_async_commit();
  for (int t = 0; t < tiles; ++t) {
    const int st = t & 1;
    if (t + 1 < tiles) {
      load_stage<A_KMAJOR>(smem + (st ^ 1) * kStage, p.a, p.M, p.K, m0, (t + 1) * kBK, p.vec_a);
      load_stage<B_KMAJOR>(smem + (2 + (st ^ 1)) * kStage, p.b, p.N, p.K, n0, (t + 1) * kBK,
                           p.vec_b);
    }
    cp_async_commit();
    cp_async_wait<1>();  // stage st has landed (only the group just issued may be in flight)
    __syncthreads();

    const __half* as = smem + st * kStage;
    const __half* bs = smem + (2 + st) * kStage;
    const int kt = min(kBK, p.K - t * kBK);
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      if (ks * 16 >= kt) break;  // a k16 step entirely past K
      unsigned b[4][2];
#pragma unroll
      for (int np = 0; np < 2; ++np) {  // two n8 tiles per ldmatrix.x4
        const int ncol = wn * 32 + np * 16;
        unsigned r[4];
        if (B_KMAJOR) {
          ldmatrix_x4_trans(r, bs + sidx<true>(ncol + (lane / 16) * 8,
                                               ks * 16 + lane % 8 + ((lane / 8) % 2) * 8));
        } else {
          ldmatrix_x4(r, bs + sidx<false>(ncol + lane % 8 + (lane / 16) * 8,
                                          ks * 16 + ((lane / 8) % 2) * 8));
        }
        b[np * 2][0] = r[0];
        b[np * 2][1] = r[1];
        b[np * 2 + 1][0] = r[2];
        b[np * 2 + 1][1] = r[3];
      }
      // A fragments one m16 tile at a time (fewer live registers), 4 mmas each.
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int mrow = wm * 64 + mi * 16;
        unsigned a[4];
        if (A_KMAJOR) {
          ldmatrix_x4_trans(a, as + sidx<true>(mrow + ((lane / 8) % 2) * 8,
                                               ks * 16 + lane % 8 + (lane / 16) * 8));
        } else {
          ldmatrix_x4(a, as + sidx<false>(mrow + lane % 8 + ((lane / 8) % 2) * 8,
                                          ks * 16 + (lane / 16) * 8));
        }
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
          mma_m16n8k16_f32f16(acc[mi][ni], a, b[ni], acc[mi][ni]);
      }
    }
    if (row_sums) {
      for (int kk = 0; kk < kt; ++kk) {
        rsum = __fadd_rn(rsum, __half2float(as[sidx<A_KMAJOR>(tid, kk)]));
      }
    }
    __syncthreads();  // everyone is done with stage st before it is refilled
  }

#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int m = m0 + wm * 64 + mi * 16 + group + (r / 2) * 8;
        const int n = n0 + wn * 32 + ni * 8 + tig * 2 + (r % 2);
        if (m < p.M && n < p.N) p.ep(m, n, acc[mi][ni][r]);
      }
    }
  }
  if (row_sums && m0 + tid < p.M) p.rs.finish(m0 + tid, rsum);
}

template <typename TC>
F16Args<TC> make_args(const GemmProblem& p) {
  return detail::make_kernel_args<__half, TC>(p, 8);  // 16-byte chunks: 8 halves
}

}  // namespace

void gemm_f16(const GemmProblem& p) {
  GA_CHECK(p.half, "gemm_f16 takes f16 operands");
  GA_CHECK(p.a_kmajor ? p.b_kmajor : true,
           "gemm_f16: a k-major A needs a k-major B (the dw product)");
  GA_CHECK(!p.c_half || (p.comp == nullptr && p.row_sum == nullptr),
           "gemm_f16: Kahan buffers and row sums need an f32 C");
  if (p.M == 0) return;
  const dim3 grid(static_cast<unsigned>((p.M + kBM - 1) / kBM),
                  static_cast<unsigned>(std::max<std::int64_t>(1, (p.N + kBN - 1) / kBN)));
  const dim3 block(kThreads);
  const std::size_t smem = 4u * kStage * sizeof(__half);
  if (!p.a_kmajor && !p.b_kmajor) {
    GA_CHECK(p.c_half, "gemm_f16: the forward product writes an f16 C");
    GA_LAUNCH((gemm_f16_kernel<false, false, __half>), grid, block, smem,
              ::gradaccum::current_stream(), make_args<__half>(p));
  } else if (!p.a_kmajor) {
    GA_CHECK(p.c_half, "gemm_f16: the dx product writes an f16 C");
    GA_LAUNCH((gemm_f16_kernel<false, true, __half>), grid, block, smem,
              ::gradaccum::current_stream(), make_args<__half>(p));
  } else {
    GA_CHECK(!p.c_half, "gemm_f16: the dw product writes an f32 C");
    GA_LAUNCH((gemm_f16_kernel<true, true, float>), grid, block, smem,
              ::gradaccum::current_stream(), make_args<float>(p));
  }
}

}  // namespace gradaccum::cuda
