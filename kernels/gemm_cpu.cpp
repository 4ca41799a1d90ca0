// Host GEMMs for the linear layer; see gemm_cpu.h for the chain every element follows.
#include "kernels/gemm_cpu.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/half.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GA_GEMM_X86 1
#endif

#if GRADACCUM_HAVE_BLAS
#include <cblas.h>
#endif

namespace gradaccum::cpu {
namespace {

using i64 = std::int64_t;

// Register tile (MR rows x NR columns), cache blocks (MC x NC outputs, KC steps of k).
constexpr int kMR = 4;
constexpr int kNR = 16;
constexpr int kMC = 64;
constexpr int kNC = 128;
constexpr int kKC = 256;

inline float load(const void* p, i64 i, bool half) {
  return half ? half_bits_to_float(static_cast<const std::uint16_t*>(p)[i])
              : static_cast<const float*>(p)[i];
}

inline void store(void* p, i64 i, bool half, float v) {
  if (half) {
    static_cast<std::uint16_t*>(p)[i] = float_to_half_bits(v);
  } else {
    static_cast<float*>(p)[i] = v;
  }
}

inline float a_at(const GemmProblem& p, i64 m, i64 k) {
  return load(p.a, p.a_kmajor ? k * p.M + m : m * p.K + k, p.half);
}

// The epilogue of element (m, n); `v` is the finished chain (see gemm_cpu.h).
inline void finish(const GemmProblem& p, i64 m, i64 n, float v) {
  const i64 idx = m * p.N + n;
  if (p.mask != nullptr && !(load(p.mask, idx, p.half) > 0.0f)) {
    if (!p.accumulate) store(p.c, idx, p.c_half, 0.0f);
    return;
  }
  if (p.bias != nullptr) v = v + load(p.bias, n, p.half);
  if (p.relu) v = v < 0.0f ? 0.0f : v;
  if (p.comp != nullptr) {
    float* c = static_cast<float*>(p.c);
    if (p.accumulate) {
      kahan_add(c[idx], p.comp[idx], v);
    } else {
      c[idx] = v;
      p.comp[idx] = 0.0f;
    }
    return;
  }
  store(p.c, idx, p.c_half, v);
}

// acc[i*ld + j] = fma(ap[k*MR + i], bp[k*NR + j], acc[i*ld + j]) for k = 0..kc-1 in order.
using MicroKernel = void (*)(int kc, const float* ap, const float* bp, float* acc, int ld);

void micro_portable(int kc, const float* ap, const float* bp, float* acc, int ld) {
  float r[kMR][kNR];
  for (int i = 0; i < kMR; ++i) {
    for (int j = 0; j < kNR; ++j)
      r[i][j] = acc[i * ld + j];
  }
  for (int k = 0; k < kc; ++k) {
    const float* a = ap + static_cast<std::ptrdiff_t>(k) * kMR;
    const float* b = bp + static_cast<std::ptrdiff_t>(k) * kNR;
    for (int i = 0; i < kMR; ++i) {
      for (int j = 0; j < kNR; ++j)
        r[i][j] = std::fma(a[i], b[j], r[i][j]);
    }
  }
  for (int i = 0; i < kMR; ++i) {
    for (int j = 0; j < kNR; ++j)
      acc[i * ld + j] = r[i][j];
  }
}

#if GA_GEMM_X86
static_assert(kMR == 4 && kNR == 16, "micro_avx2 is written for a 4x16 register tile");

// The same chains with vfmadd (one rounding, exactly std::fma): 8 accumulators of 8 lanes.
__attribute__((target("avx2,fma"))) void micro_avx2(int kc, const float* ap, const float* bp,
                                                    float* acc, int ld) {
  __m256 c00 = _mm256_loadu_ps(acc), c01 = _mm256_loadu_ps(acc + 8);
  __m256 c10 = _mm256_loadu_ps(acc + ld), c11 = _mm256_loadu_ps(acc + ld + 8);
  __m256 c20 = _mm256_loadu_ps(acc + 2 * ld), c21 = _mm256_loadu_ps(acc + 2 * ld + 8);
  __m256 c30 = _mm256_loadu_ps(acc + 3 * ld), c31 = _mm256_loadu_ps(acc + 3 * ld + 8);
  for (int k = 0; k < kc; ++k) {
    const float* a = ap + static_cast<std::ptrdiff_t>(k) * kMR;
    const float* b = bp + static_cast<std::ptrdiff_t>(k) * kNR;
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
  }
  _mm256_storeu_ps(acc, c00);
  _mm256_storeu_ps(acc + 8, c01);
  _mm256_storeu_ps(acc + ld, c10);
  _mm256_storeu_ps(acc + ld + 8, c11);
  _mm256_storeu_ps(acc + 2 * ld, c20);
  _mm256_storeu_ps(acc + 2 * ld + 8, c21);
  _mm256_storeu_ps(acc + 3 * ld, c30);
  _mm256_storeu_ps(acc + 3 * ld + 8, c31);
}
#endif

MicroKernel pick_micro_kernel() {
#if GA_GEMM_X86
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return micro_avx2;
#endif
  return micro_portable;
}

// Runs body(begin, end) over [0, count) on up to two threads (the caller's and one more) when
// the work is large enough to pay for a thread. Each index is handled by exactly one thread, so
// the results never depend on the split.
template <typename Body>
void parallel_range(i64 count, double work, const Body& body) {
  constexpr double kMinWorkPerThread = 1 << 20;
  if (count < 2 || work < 2 * kMinWorkPerThread) {
    body(i64{0}, count);
    return;
  }
  const i64 half = (count + 1) / 2;
  std::thread other([&] { body(half, count); });
  body(i64{0}, half);
  other.join();
}

// finish() for an all-f32 problem without Kahan over the block [m0, m0+rows) x [n0, n0+cols),
// from `prod` (leading dimension ld): the same operations in the same order as finish(),
// specialised per case so that the loops vectorise. add_stored: the chain did not start from the
// stored C (the BLAS path's separate product), so C is added first.
template <bool kAddStored, bool kKeepMasked, bool kBias, bool kRelu, bool kMask>
void epilogue_f32_block(const GemmProblem& p, i64 m0, i64 rows, i64 n0, i64 cols, const float* prod,
                        i64 ld) {
  float* c = static_cast<float*>(p.c);
  const float* bias = static_cast<const float*>(p.bias) + (kBias ? n0 : 0);
  const float* mask = static_cast<const float*>(p.mask);
  for (i64 i = 0; i < rows; ++i) {
    float* cr = c + (m0 + i) * p.N + n0;
    const float* pr = prod + i * ld;  // may be cr itself (the BLAS path writes C in place)
    const float* mr = kMask ? mask + (m0 + i) * p.N + n0 : nullptr;
    for (i64 j = 0; j < cols; ++j) {
      const float stored = (kAddStored || kKeepMasked) ? cr[j] : 0.0f;
      float v = kAddStored ? stored + pr[j] : pr[j];
      if (kBias) v = v + bias[j];
      if (kRelu) v = v < 0.0f ? 0.0f : v;
      if (kMask) v = mr[j] > 0.0f ? v : (kKeepMasked ? stored : 0.0f);
      cr[j] = v;
    }
  }
}

template <typename F>
void with_flag(bool flag, const F& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

void epilogue_f32(const GemmProblem& p, i64 m0, i64 rows, i64 n0, i64 cols, const float* prod,
                  i64 ld, bool add_stored) {
  const bool keep_masked = p.accumulate && p.mask != nullptr;
  with_flag(add_stored, [&](auto add) {
    with_flag(keep_masked, [&](auto keep) {
      with_flag(p.bias != nullptr, [&](auto bias) {
        with_flag(p.relu, [&](auto relu) {
          with_flag(p.mask != nullptr, [&](auto mask) {
            epilogue_f32_block<decltype(add)::value, decltype(keep)::value, decltype(bias)::value,
                               decltype(relu)::value, decltype(mask)::value>(p, m0, rows, n0, cols,
                                                                             prod, ld);
          });
        });
      });
    });
  });
}

// Copies `count` values of a row or column of A or B (f16 bits widened exactly, f32 as is).
inline void gather(const GemmProblem& p, const void* src, i64 first, i64 stride, int count,
                   float* dst, int dst_stride) {
  if (p.half) {
    const auto* h = static_cast<const std::uint16_t*>(src) + first;
    for (int i = 0; i < count; ++i)
      dst[i * dst_stride] = half_bits_to_float(h[i * stride]);
  } else {
    const float* f = static_cast<const float*>(src) + first;
    for (int i = 0; i < count; ++i)
      dst[i * dst_stride] = f[i * stride];
  }
}

// One output tile of at most MC x NC elements: packs A and B per KC block and runs the micro
// kernel over every MR x NR register tile; then the epilogue. A worker's consecutive tiles share
// their column block, so a B panel packed for the whole of K is kept for the next tile (when it
// fits in kPanelLimit floats). Packing only moves values: the chains are those of gemm_problem.h.
struct TileWorker {
  static constexpr i64 kPanelLimit = i64{1} << 20;  // 4 MiB of packed B

  const GemmProblem& p;
  MicroKernel micro;
  bool whole_panel = p.K * kNC <= kPanelLimit;
  std::vector<float> ap = std::vector<float>(static_cast<std::size_t>(kMC) * kKC);
  std::vector<float> bp =
      std::vector<float>(static_cast<std::size_t>(kNC) *
                         static_cast<std::size_t>(whole_panel ? std::max<i64>(p.K, 1) : kKC));
  std::vector<float> acc = std::vector<float>(static_cast<std::size_t>(kMC) * kNC);
  i64 panel_n0 = -1;  // the column block whose whole-K panel bp holds (-1: none)

  void run(i64 m0, i64 n0) {
    const int mc = static_cast<int>(std::min<i64>(kMC, p.M - m0));
    const int nc = static_cast<int>(std::min<i64>(kNC, p.N - n0));
    const int mc_pad = (mc + kMR - 1) / kMR * kMR;
    const int nc_pad = (nc + kNR - 1) / kNR * kNR;
    init_acc(m0, mc, mc_pad, n0, nc, nc_pad);
    const bool reuse = whole_panel && panel_n0 == n0;
    for (i64 k0 = 0; k0 < p.K; k0 += kKC) {
      const int kc = static_cast<int>(std::min<i64>(kKC, p.K - k0));
      pack_a(m0, mc, mc_pad, k0, kc);
      float* panel = whole_panel ? &bp[static_cast<std::size_t>(k0 * nc_pad)] : bp.data();
      if (!reuse) pack_b(panel, n0, nc, nc_pad, k0, kc);
      for (int i = 0; i < mc_pad; i += kMR) {
        for (int j = 0; j < nc_pad; j += kNR) {
          micro(kc, &ap[static_cast<std::size_t>(i) * kc], &panel[static_cast<std::size_t>(j) * kc],
                &acc[static_cast<std::size_t>(i) * kNC + j], kNC);
        }
      }
    }
    panel_n0 = whole_panel ? n0 : -1;
    finish_tile(m0, mc, n0, nc);
  }

  // The chains start from the stored C when accumulating without Kahan, else from 0.
  void init_acc(i64 m0, int mc, int mc_pad, i64 n0, int nc, int nc_pad) {
    const bool from_c = p.accumulate && p.comp == nullptr;
    for (int i = 0; i < mc_pad; ++i) {
      float* row = &acc[static_cast<std::size_t>(i) * kNC];
      int j = 0;
      if (from_c && i < mc) {
        if (p.c_half) {
          const auto* c = static_cast<const std::uint16_t*>(p.c) + (m0 + i) * p.N + n0;
          for (; j < nc; ++j)
            row[j] = half_bits_to_float(c[j]);
        } else {
          const float* c = static_cast<const float*>(p.c) + (m0 + i) * p.N + n0;
          for (; j < nc; ++j)
            row[j] = c[j];
        }
      }
      for (; j < nc_pad; ++j)
        row[j] = 0.0f;
    }
  }

  void finish_tile(i64 m0, int mc, i64 n0, int nc) {
    // The all-f32 cases without Kahan through the vectorised rows; the rest element by element.
    if (!p.c_half && p.comp == nullptr && !(p.half && (p.bias != nullptr || p.mask != nullptr))) {
      epilogue_f32(p, m0, mc, n0, nc, acc.data(), kNC, /*add_stored=*/false);
      return;
    }
    for (int i = 0; i < mc; ++i) {
      for (int j = 0; j < nc; ++j)
        finish(p, m0 + i, n0 + j, acc[static_cast<std::size_t>(i) * kNC + j]);
    }
  }

  // ap: MR-row strips, each [kc][MR]; rows past M are zero.
  void pack_a(i64 m0, int mc, int mc_pad, i64 k0, int kc) {
    for (int s = 0; s < mc_pad; s += kMR) {
      float* strip = &ap[static_cast<std::size_t>(s) * kc];
      for (int i = 0; i < kMR; ++i) {
        const i64 m = m0 + s + i;
        if (s + i >= mc) {
          for (int k = 0; k < kc; ++k)
            strip[k * kMR + i] = 0.0f;
        } else if (p.a_kmajor) {  // A(m, k) = a[k*M + m]: filled below, MR values per k
          continue;
        } else {  // A(m, k) = a[m*K + k]
          gather(p, p.a, m * p.K + k0, 1, kc, strip + i, kMR);
        }
      }
      if (p.a_kmajor) {
        const int rows = std::min(kMR, mc - s);
        for (int k = 0; k < kc; ++k)
          gather(p, p.a, (k0 + k) * p.M + m0 + s, 1, rows, strip + k * kMR, 1);
      }
    }
  }

  // A panel of NR-column strips, each [kc][NR]; columns past N are zero.
  void pack_b(float* panel, i64 n0, int nc, int nc_pad, i64 k0, int kc) {
    for (int s = 0; s < nc_pad; s += kNR) {
      float* strip = &panel[static_cast<std::size_t>(s) * kc];
      const int cols = std::min(kNR, nc - s);
      if (p.b_kmajor) {  // B(k, n) = b[k*N + n]: rows of NR contiguous values
        for (int k = 0; k < kc; ++k) {
          gather(p, p.b, (k0 + k) * p.N + n0 + s, 1, std::max(cols, 0), strip + k * kNR, 1);
          for (int j = std::max(cols, 0); j < kNR; ++j)
            strip[k * kNR + j] = 0.0f;
        }
      } else {  // B(k, n) = b[n*K + k]: a column of B is contiguous in k
        for (int j = 0; j < kNR; ++j) {
          if (j < cols) {
            gather(p, p.b, (n0 + s + j) * p.K + k0, 1, kc, strip + j, kNR);
          } else {
            for (int k = 0; k < kc; ++k)
              strip[k * kNR + j] = 0.0f;
          }
        }
      }
    }
  }
};

// row_sum[m] (mode) Σ_k A(m, k): one chain per m in k order, vectorised across m.
void row_sums(const GemmProblem& p) {
  if (p.row_sum == nullptr || p.M == 0) return;
  const bool from_stored = p.accumulate && p.row_sum_comp == nullptr;
  parallel_range(p.M, static_cast<double>(p.M) * static_cast<double>(p.K), [&](i64 b, i64 e) {
    constexpr i64 kChunk = 256;
    float s[kChunk];
    for (i64 m0 = b; m0 < e; m0 += kChunk) {
      const i64 n = std::min(kChunk, e - m0);
      for (i64 i = 0; i < n; ++i)
        s[i] = from_stored ? p.row_sum[m0 + i] : 0.0f;
      if (p.a_kmajor && !p.half) {  // rows of A are contiguous in m: vectorised across m
        const float* a = static_cast<const float*>(p.a) + m0;
        for (i64 k = 0; k < p.K; ++k) {
          const float* ak = a + k * p.M;
          for (i64 i = 0; i < n; ++i)
            s[i] = s[i] + ak[i];
        }
      } else {
        for (i64 k = 0; k < p.K; ++k) {
          for (i64 i = 0; i < n; ++i)
            s[i] = s[i] + a_at(p, m0 + i, k);
        }
      }
      for (i64 i = 0; i < n; ++i) {
        if (p.row_sum_comp == nullptr) {
          p.row_sum[m0 + i] = s[i];
        } else if (p.accumulate) {
          kahan_add(p.row_sum[m0 + i], p.row_sum_comp[m0 + i], s[i]);
        } else {
          p.row_sum[m0 + i] = s[i];
          p.row_sum_comp[m0 + i] = 0.0f;
        }
      }
    }
  });
}

}  // namespace

void gemm_handwritten(const GemmProblem& p) {
  static const MicroKernel micro = pick_micro_kernel();
  const i64 row_tiles = (p.M + kMC - 1) / kMC;
  const i64 col_tiles = (p.N + kNC - 1) / kNC;
  const double work = static_cast<double>(p.M) * static_cast<double>(p.N) *
                      static_cast<double>(std::max<i64>(p.K, 1));
  // Tiles are numbered column-tile-major so that a thread's consecutive tiles share B.
  parallel_range(row_tiles * col_tiles, work, [&](i64 b, i64 e) {
    TileWorker w{p, micro};
    for (i64 t = b; t < e; ++t)
      w.run((t % row_tiles) * kMC, (t / row_tiles) * kNC);
  });
  row_sums(p);
}

bool have_blas() {
#if GRADACCUM_HAVE_BLAS
  return true;
#else
  return false;
#endif
}

void gemm_blas(const GemmProblem& p) {
#if GRADACCUM_HAVE_BLAS
  if (p.M == 0 || p.N == 0 || p.K == 0) {
    gemm_handwritten(p);  // nothing to multiply: the epilogue alone
    return;
  }
  GA_CHECK(p.M <= INT_MAX && p.N <= INT_MAX && p.K <= INT_MAX,
           "BLAS GEMM dimensions must fit in int, got M=" << p.M << " N=" << p.N << " K=" << p.K);
  const auto as_f32 = [](const void* src, i64 n, bool half, std::vector<float>& buf) {
    if (!half) return static_cast<const float*>(src);
    buf.resize(static_cast<std::size_t>(n));
    for (i64 i = 0; i < n; ++i)
      buf[static_cast<std::size_t>(i)] = load(src, i, true);
    return static_cast<const float*>(buf.data());
  };
  std::vector<float> abuf, bbuf, cbuf;
  const float* a = as_f32(p.a, p.M * p.K, p.half, abuf);
  const float* b = as_f32(p.b, p.K * p.N, p.half, bbuf);
  const bool epilogue = p.mask != nullptr || p.bias != nullptr || p.relu;
  // f32 without Kahan: sgemm writes C (beta 1 accumulates) and the epilogue, if any, runs over
  // it in place; only an epilogue that needs the stored C next to the bare product (accumulate)
  // gets a product buffer. Otherwise (f16 C, Kahan) the generic per-element epilogue.
  // (f16 operands are converted above; f16 bias or mask need the generic epilogue.)
  const bool plain_f32 = !p.c_half && p.comp == nullptr && !(p.half && epilogue);
  const bool direct = plain_f32 && !(p.accumulate && epilogue);
  float* c = static_cast<float*>(p.c);
  if (!direct) {
    cbuf.resize(static_cast<std::size_t>(p.M * p.N));
    c = cbuf.data();
  }
  const int M = static_cast<int>(p.M), N = static_cast<int>(p.N), K = static_cast<int>(p.K);
  cblas_sgemm(CblasRowMajor, p.a_kmajor ? CblasTrans : CblasNoTrans,
              p.b_kmajor ? CblasNoTrans : CblasTrans, M, N, K, 1.0f, a, p.a_kmajor ? M : K, b,
              p.b_kmajor ? N : K, direct && p.accumulate ? 1.0f : 0.0f, c, N);
  if (plain_f32) {
    if (epilogue) epilogue_f32(p, 0, p.M, 0, p.N, c, p.N, /*add_stored=*/p.accumulate);
  } else {
    const bool add_stored = p.accumulate && p.comp == nullptr;
    for (i64 m = 0; m < p.M; ++m) {
      for (i64 n = 0; n < p.N; ++n) {
        float v = cbuf[static_cast<std::size_t>(m * p.N + n)];
        if (add_stored) v = load(p.c, m * p.N + n, p.c_half) + v;
        finish(p, m, n, v);
      }
    }
  }
  row_sums(p);
#else
  (void)p;
  GA_FAIL(
      "GemmBackend::Vendor on the CPU needs a BLAS library, and gradaccum was built "
      "without one (install OpenBLAS and reconfigure)");
#endif
}

}  // namespace gradaccum::cpu
