// The one header with inline PTX: tensor-core MMA, ldmatrix and cp.async, for sm_80+ (sm_90).
// Three builds of each function:
//   - nvcc's device pass (__CUDA_ARCH__): the PTX instruction;
//   - the emulator (GRADACCUM_CUDA_EMULATOR, emu/cuda_emu.h): a warp collective with the PTX ISA's
//     per-lane fragment layouts;
//   - nvcc's host pass: declared, empty (never called on the host).
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16" with .f16 and "ldmatrix"), with
// group = lane / 4 and tig = lane % 4 ("threadID_in_group"); a 32-bit register holds two halves,
// the lower-indexed element in its low 16 bits:
//   A (16x16, row-major): a[0] = A[group][2tig, 2tig+1]     a[1] = A[group+8][2tig, 2tig+1]
//                         a[2] = A[group][2tig+8, 2tig+9]   a[3] = A[group+8][2tig+8, 2tig+9]
//   B (16x8, "col"):      b[0] = B[2tig, 2tig+1][group]     b[1] = B[2tig+8, 2tig+9][group]
//   C, D (16x8, f32):     c[0], c[1] = C[group][2tig, 2tig+1]   c[2], c[3] = C[group+8][2tig,
//   2tig+1] ldmatrix .m8n8.x{1,2,4}.b16: lanes 8i..8i+7 pass the addresses of rows 0..7 of matrix i
//   (16 bytes each, 16-byte aligned); r[i] of lane l holds row l/4, columns 2(l%4) and 2(l%4)+1 of
//   matrix i. With .trans, r[i] holds rows 2(l%4) and 2(l%4)+1 of column l/4 instead.
#pragma once

#include <cuda_fp16.h>

namespace gradaccum::ptx {

#if defined(__CUDA_ARCH__)
__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
#endif

#if defined(GRADACCUM_CUDA_EMULATOR)
namespace emu_detail {

inline float half_bits_to_float(unsigned bits) {
  __half_raw raw;
  raw.x = static_cast<unsigned short>(bits & 0xffffu);
  return __half2float(__half(raw));
}

inline unsigned load_u32(const unsigned char* p) {
  unsigned v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline unsigned short load_u16(const unsigned char* p) {
  unsigned short v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// ldmatrix for `count` matrices: the lanes exchange their row addresses, then each lane reads its
// own elements (so the reads are its own, for the sanitizers).
inline void ldmatrix(unsigned* r, const void* smem_row, int count, bool trans, const char* what) {
  const auto mine = reinterpret_cast<std::uintptr_t>(smem_row);
  std::uintptr_t rows[32];
  const unsigned taking_part =
      ::gradaccum::emu::detail::warp_gather(what, 0xffffffffu, &mine, sizeof mine, rows, false);
  if (taking_part != 0xffffffffu) {
    ::gradaccum::emu::detail::fault(std::string(what) + " needs all 32 lanes of the warp");
  }
  const unsigned lane = ::gradaccum::emu::detail::g_thread->lane;
  for (int i = 0; i < count * 8; ++i) {
    if (rows[i] % 16 != 0) {
      ::gradaccum::emu::detail::fault(std::string(what) + ": lane " + std::to_string(i) +
                                      " passes a row address that is not 16-byte aligned");
    }
  }
  for (int m = 0; m < count; ++m) {
    if (!trans) {
      const auto* row = reinterpret_cast<const unsigned char*>(rows[8 * m + lane / 4]);
      r[m] = load_u32(row + 4 * (lane % 4));
    } else {
      const auto* row0 = reinterpret_cast<const unsigned char*>(rows[8 * m + 2 * (lane % 4)]);
      const auto* row1 = reinterpret_cast<const unsigned char*>(rows[8 * m + 2 * (lane % 4) + 1]);
      r[m] = static_cast<unsigned>(load_u16(row0 + 2 * (lane / 4))) |
             (static_cast<unsigned>(load_u16(row1 + 2 * (lane / 4))) << 16);
    }
  }
}

}  // namespace emu_detail
#endif

// D = A * B + C on a 16x8x16 tile: f16 inputs, f32 accumulation; a warp-wide instruction.
// The emulator forms each product exactly (a product of two halves fits a float) and adds, in
// float with round-to-nearest, c first and then the products for k = 0, 1, ..., 15 in that order.
// The hardware's order and internal precision are unspecified, so results may differ from a GPU
// in the last bits.
__device__ __forceinline__ void mma_m16n8k16_f32f16(float d[4], const unsigned a[4],
                                                    const unsigned b[2], const float c[4]) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#elif defined(GRADACCUM_CUDA_EMULATOR)
  unsigned mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  unsigned all[32][6];
  const unsigned taking_part = ::gradaccum::emu::detail::warp_gather(
      "mma.sync.m16n8k16", 0xffffffffu, mine, sizeof mine, all, false);
  if (taking_part != 0xffffffffu) {
    ::gradaccum::emu::detail::fault("mma.sync.m16n8k16 needs all 32 lanes of the warp");
  }
  const unsigned lane = ::gradaccum::emu::detail::g_thread->lane;
  const unsigned group = lane / 4;
  const unsigned tig = lane % 4;
  const float cin[4] = {c[0], c[1], c[2], c[3]};  // d may alias c
  for (unsigned i = 0; i < 4; ++i) {
    const unsigned row = group + (i >= 2 ? 8 : 0);
    const unsigned col = 2 * tig + (i & 1);
    float acc = cin[i];
    for (unsigned k = 0; k < 16; ++k) {
      // A[row][k]: lane (row % 8) * 4 + (k % 8) / 2, register (row >= 8) + 2 (k >= 8), half k & 1.
      const unsigned a_reg = (row >= 8 ? 1u : 0u) + (k >= 8 ? 2u : 0u);
      const unsigned a_bits = all[(row % 8) * 4 + (k % 8) / 2][a_reg] >> (16 * (k & 1));
      // B[k][col]: lane col * 4 + (k % 8) / 2, register (k >= 8), half k & 1.
      const unsigned b_bits = all[col * 4 + (k % 8) / 2][4 + (k >= 8 ? 1 : 0)] >> (16 * (k & 1));
      const float product =
          emu_detail::half_bits_to_float(a_bits) * emu_detail::half_bits_to_float(b_bits);
      acc = acc + product;
    }
    d[i] = acc;
  }
#else
  (void)d;
  (void)a;
  (void)b;
  (void)c;
#endif
}

// ldmatrix.sync.aligned.m8n8.x4.shared.b16: every lane passes one row address (lanes 8i..8i+7:
// matrix i).
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const void* smem_row) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(smem_row)));
#elif defined(GRADACCUM_CUDA_EMULATOR)
  emu_detail::ldmatrix(r, smem_row, 4, false, "ldmatrix.x4");
#else
  (void)r;
  (void)smem_row;
#endif
}

// ldmatrix .x2: lanes 0..15 pass the row addresses (the others' are ignored but must be valid).
__device__ __forceinline__ void ldmatrix_x2(unsigned r[2], const void* smem_row) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(smem_row)));
#elif defined(GRADACCUM_CUDA_EMULATOR)
  emu_detail::ldmatrix(r, smem_row, 2, false, "ldmatrix.x2");
#else
  (void)r;
  (void)smem_row;
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(unsigned r[2], const void* smem_row) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(smem_row)));
#elif defined(GRADACCUM_CUDA_EMULATOR)
  emu_detail::ldmatrix(r, smem_row, 2, true, "ldmatrix.x2.trans");
#else
  (void)r;
  (void)smem_row;
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const void* smem_row) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(smem_row)));
#elif defined(GRADACCUM_CUDA_EMULATOR)
  emu_detail::ldmatrix(r, smem_row, 4, true, "ldmatrix.x4.trans");
#else
  (void)r;
  (void)smem_row;
#endif
}

// cp.async.cg.shared.global, 16 bytes (both addresses 16-byte aligned). The emulator copies at
// once, so a missing cp_async_wait is not caught there.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(smem)),
               "l"(gmem));
#elif defined(GRADACCUM_CUDA_EMULATOR)
  if (reinterpret_cast<std::uintptr_t>(smem) % 16 != 0 ||
      reinterpret_cast<std::uintptr_t>(gmem) % 16 != 0) {
    ::gradaccum::emu::detail::fault("cp.async of 16 bytes needs 16-byte aligned addresses");
  }
  std::memcpy(smem, gmem, 16);
#else
  (void)smem;
  (void)gmem;
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N of the committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace gradaccum::ptx

// The functions are also callable unqualified, from any namespace.
using gradaccum::ptx::cp_async_16;
using gradaccum::ptx::cp_async_commit;
using gradaccum::ptx::cp_async_wait;
using gradaccum::ptx::ldmatrix_x2;
using gradaccum::ptx::ldmatrix_x2_trans;
using gradaccum::ptx::ldmatrix_x4;
using gradaccum::ptx::ldmatrix_x4_trans;
using gradaccum::ptx::mma_m16n8k16_f32f16;
