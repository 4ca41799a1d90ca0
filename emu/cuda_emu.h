// The emulated CUDA device, device side: force-included (-include emu/cuda_emu.h) into every .cu
// file of an emulator build (GRADACCUM_CUDA=EMU), which the host compiler then compiles as C++.
// It defines the CUDA qualifiers, includes the real CUDA headers for the types and host-side
// declarations, and provides the built-in variables, barriers, warp collectives, atomics and
// intrinsics that kernels use. Kernels run on fibers of the emulator's runtime (emu/scheduler.cpp);
// see emu/README.md.
#ifndef GRADACCUM_EMU_CUDA_EMU_H_
#define GRADACCUM_EMU_CUDA_EMU_H_

// A CUDA header seen first keeps its own qualifier definitions: `__shared__` would then silently
// become a per-thread local. Refuse that order.
#if defined(__HOST_DEFINES_H__) || defined(__CUDA_RUNTIME_H__) ||                                 \
    defined(__CUDA_RUNTIME_API_H__) || defined(__DRIVER_TYPES_H__) || defined(__CUDA_FP16_H__) || \
    defined(__CUDA_BF16_H__)
#error "emu/cuda_emu.h must be included before any CUDA header (it is force-included in EMU builds)"
#endif
#if defined(__CUDACC__)
#error "emu/cuda_emu.h is for host compilers; nvcc builds kernels for a real GPU"
#endif

#define GRADACCUM_CUDA_EMULATOR 1

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

// ---- qualifiers (before any CUDA header: the headers keep existing definitions) ----------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
// Static storage, one instance for the block that is running: blocks run one at a time.
#define __shared__ static
#define __launch_bounds__(...)

#include <cuda_runtime.h>
#include <cuda_fp16.h>

namespace gradaccum::emu::detail {

// The thread that is running (set by the scheduler before it switches to a fiber).
struct ThreadInfo {
  uint3 idx;
  unsigned linear;  // x + y * blockDim.x + z * blockDim.x * blockDim.y
  unsigned lane;
  unsigned warp;
};
struct BlockInfo {
  uint3 idx;
  dim3 dim;
  dim3 grid;
  unsigned char* dynamic_shared;
  std::size_t dynamic_shared_bytes;
};
extern ThreadInfo* g_thread;
extern BlockInfo g_block;

// Ends the running kernel with an error (a gradaccum::Error thrown by the launch, naming the
// kernel, the block and the thread).
[[noreturn]] void fault(const std::string& message);

// Block barrier; kind 0: __syncthreads, 1: _count, 2: _and, 3: _or. Returns the reduction.
int block_barrier(const char* file, int line, int kind, int predicate);
// Warp rendezvous of the lanes named in `mask`: every lane hands `bytes` bytes at `mine` and gets
// the values of all taking part in `all` (32 slots of `bytes`). Returns the mask of the lanes that
// took part (mask without lanes beyond the block's last thread). `sync`: orders memory
// (__syncwarp).
unsigned warp_gather(const char* what, unsigned mask, const void* mine, unsigned bytes, void* all,
                     bool sync);
unsigned active_mask();
long long clock_ticks();

// Directed rounding (mode: 1 toward zero, 2 up, 3 down), in emu/intrinsics.cpp.
float fop_directed(int op, int mode, float a, float b, float c);
double dop_directed(int op, int mode, double a, double b, double c);
enum { kOpAdd, kOpSub, kOpMul, kOpFma, kOpDiv, kOpRcp, kOpSqrt };
// Round to nearest even, with the usual saturation/NaN rules of cvt.rni etc.
long long f2ll(double value, int mode, long long lo, long long hi);
unsigned long long f2ull(double value, int mode);
// Round-to-nearest-even conversion of a double to half bits (exact: no double rounding).
unsigned short double_to_half_bits(double value);

template <typename To, typename From>
inline To bit_cast(const From& from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast needs equal sizes");
  To to;
  std::memcpy(static_cast<void*>(&to), static_cast<const void*>(&from), sizeof(To));
  return to;
}

enum ShuffleMode { kShflIdx, kShflUp, kShflDown, kShflBfly };

// shfl.sync with the PTX ISA's lane arithmetic (segment mask from `width`, clamp value).
template <typename T>
inline T shuffle(const char* what, unsigned mask, T var, int mode, int b, int width) {
  // (__half2 has a user-written assignment, so it is not "trivially copyable"; it is plain data.)
  static_assert(std::is_trivially_destructible<T>::value && sizeof(T) <= 16,
                "warp shuffles move plain values of at most 16 bytes");
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
    fault(std::string(what) + ": width " + std::to_string(width) +
          " is not a power of two in [1, 32]");
  }
  alignas(16) unsigned char all[32][sizeof(T)];
  const unsigned taking_part = warp_gather(what, mask, &var, sizeof(T), all, false);
  const int lane = static_cast<int>(g_thread->lane);
  const int segmask = (32 - width) & 0x1f;
  const int cval = mode == kShflUp ? 0 : 0x1f;
  const int max_lane = (lane & segmask) | (cval & ~segmask);
  const int min_lane = lane & segmask;
  int j = lane;
  bool in_range = false;
  switch (mode) {
    case kShflUp:
      j = lane - b;
      in_range = j >= max_lane;
      break;
    case kShflDown:
      j = lane + b;
      in_range = j <= max_lane;
      break;
    case kShflBfly:
      j = lane ^ b;
      in_range = j <= max_lane;
      break;
    default:
      j = min_lane | (b & 0x1f & ~segmask);
      in_range = j <= max_lane;
      break;
  }
  if (!in_range || j < 0 || j > 31) j = lane;
  if (((taking_part >> j) & 1u) == 0) {
    fault(std::string(what) + ": lane " + std::to_string(lane) + " reads lane " +
          std::to_string(j) + ", which is not taking part (mask 0x" +
          [&] {
            char buf[16];
            std::snprintf(buf, sizeof buf, "%08x", mask);
            return std::string(buf);
          }() +
          ", or beyond the block's last thread): its value is undefined on a GPU");
  }
  T result;
  std::memcpy(static_cast<void*>(&result), all[j], sizeof(T));
  return result;
}

template <typename T>
inline unsigned match_any(unsigned mask, T value) {
  static_assert(std::is_integral<T>::value || std::is_floating_point<T>::value, "match type");
  T all[32];
  const unsigned taking_part = warp_gather("__match_any_sync", mask, &value, sizeof(T), all, false);
  unsigned same = 0;
  for (unsigned m = taking_part; m != 0; m &= m - 1) {
    const int j = __builtin_ctz(m);
    if (std::memcmp(&all[j], &value, sizeof(T)) == 0) same |= 1u << j;
  }
  return same;
}

template <typename T>
inline unsigned match_all(unsigned mask, T value, int* pred) {
  T all[32];
  const unsigned taking_part = warp_gather("__match_all_sync", mask, &value, sizeof(T), all, false);
  for (unsigned m = taking_part; m != 0; m &= m - 1) {
    if (std::memcmp(&all[__builtin_ctz(m)], &value, sizeof(T)) != 0) {
      *pred = 0;
      return 0;
    }
  }
  *pred = 1;
  return mask;
}

template <typename T, typename Op>
inline T warp_reduce(const char* what, unsigned mask, T value, Op op) {
  T all[32];
  unsigned m = warp_gather(what, mask, &value, sizeof(T), all, false);
  T acc = all[__builtin_ctz(m)];
  for (m &= m - 1; m != 0; m &= m - 1)
    acc = op(acc, all[__builtin_ctz(m)]);
  return acc;
}

inline unsigned vote(const char* what, unsigned mask, int predicate, unsigned* taking_part_out) {
  unsigned char all[32];
  const unsigned char mine = predicate != 0 ? 1 : 0;
  const unsigned taking_part = warp_gather(what, mask, &mine, 1, all, false);
  if (taking_part_out != nullptr) *taking_part_out = taking_part;
  unsigned bits = 0;
  for (unsigned m = taking_part; m != 0; m &= m - 1) {
    const int j = __builtin_ctz(m);
    if (all[j] != 0) bits |= 1u << j;
  }
  return bits;
}

// Atomic read-modify-write through a compare-and-swap loop on the value's bits (relaxed, like
// CUDA's atomics; real atomics so that ThreadSanitizer sees them as such).
template <typename T, typename F>
inline T atomic_update(T* address, F update) {
  using Bits = std::conditional_t<sizeof(T) == 2, unsigned short,
                                  std::conditional_t<sizeof(T) == 4, unsigned, unsigned long long>>;
  static_assert(sizeof(T) == sizeof(Bits), "atomics on 2, 4 or 8 bytes");
  Bits* bits = reinterpret_cast<Bits*>(address);
  Bits old_bits = __atomic_load_n(bits, __ATOMIC_RELAXED);
  for (;;) {
    const T old = bit_cast<T>(old_bits);
    const Bits new_bits = bit_cast<Bits>(static_cast<T>(update(old)));
    if (__atomic_compare_exchange_n(bits, &old_bits, new_bits, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
      return old;
    }
  }
}

// The GPU's fast approximations (MUFU): ex2.approx / lg2.approx of a product rounded to float,
// and sin/cos of an argument reduced in float, as the hardware does; not correctly rounded.
inline float approx_sin_cos(float x, bool cosine) {
  const float turns = x * 0.159154943091895f;  // x / (2 pi), rounded like the hardware does
  const float frac = turns - std::nearbyint(turns);
  const double angle = static_cast<double>(frac) * 6.283185307179586;
  return static_cast<float>(cosine ? std::cos(angle) : std::sin(angle));
}

}  // namespace gradaccum::emu::detail

// ---- the C++ runtime overloads that cuda_runtime.h declares for nvcc only ----
template <class T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
template <class T>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* entry) {
  return ::cudaFuncGetAttributes(attr, reinterpret_cast<const void*>(entry));
}
template <class T>
inline cudaError_t cudaFuncSetCacheConfig(T* entry, cudaFuncCache config) {
  return ::cudaFuncSetCacheConfig(reinterpret_cast<const void*>(entry), config);
}
template <class T>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, T* entry,
                                                                 int block_size,
                                                                 std::size_t dynamic_bytes) {
  return ::cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      blocks, reinterpret_cast<const void*>(entry), block_size, dynamic_bytes);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbol(const T& symbol, const void* src, std::size_t count,
                                      std::size_t offset = 0,
                                      cudaMemcpyKind kind = cudaMemcpyHostToDevice) {
  return ::cudaMemcpyToSymbol(static_cast<const void*>(&symbol), src, count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbol(void* dst, const T& symbol, std::size_t count,
                                        std::size_t offset = 0,
                                        cudaMemcpyKind kind = cudaMemcpyDeviceToHost) {
  return ::cudaMemcpyFromSymbol(dst, static_cast<const void*>(&symbol), count, offset, kind);
}
template <class T>
inline cudaError_t cudaMemcpyToSymbolAsync(const T& symbol, const void* src, std::size_t count,
                                           std::size_t offset = 0,
                                           cudaMemcpyKind kind = cudaMemcpyHostToDevice,
                                           cudaStream_t stream = 0) {
  return ::cudaMemcpyToSymbolAsync(static_cast<const void*>(&symbol), src, count, offset, kind,
                                   stream);
}
template <class T>
inline cudaError_t cudaMemcpyFromSymbolAsync(void* dst, const T& symbol, std::size_t count,
                                             std::size_t offset = 0,
                                             cudaMemcpyKind kind = cudaMemcpyDeviceToHost,
                                             cudaStream_t stream = 0) {
  return ::cudaMemcpyFromSymbolAsync(dst, static_cast<const void*>(&symbol), count, offset, kind,
                                     stream);
}
template <class T>
inline cudaError_t cudaGetSymbolAddress(void** address, const T& symbol) {
  return ::cudaGetSymbolAddress(address, static_cast<const void*>(&symbol));
}

// ---- built-in variables (after the CUDA headers) ----
#define threadIdx (static_cast<const uint3&>(::gradaccum::emu::detail::g_thread->idx))
#define blockIdx (static_cast<const uint3&>(::gradaccum::emu::detail::g_block.idx))
#define blockDim (static_cast<const dim3&>(::gradaccum::emu::detail::g_block.dim))
#define gridDim (static_cast<const dim3&>(::gradaccum::emu::detail::g_block.grid))
constexpr int warpSize = 32;

// Dynamic shared memory (`extern __shared__ T name[]` under nvcc; core/launch.cuh).
#define GA_DYNAMIC_SHARED(type, name) \
  type* const name = reinterpret_cast<type*>(::gradaccum::emu::detail::g_block.dynamic_shared)

// ---- barriers and fences ----
#define __syncthreads() ::gradaccum::emu::detail::block_barrier(__FILE__, __LINE__, 0, 1)
#define __syncthreads_count(p) ::gradaccum::emu::detail::block_barrier(__FILE__, __LINE__, 1, (p))
#define __syncthreads_and(p) ::gradaccum::emu::detail::block_barrier(__FILE__, __LINE__, 2, (p))
#define __syncthreads_or(p) ::gradaccum::emu::detail::block_barrier(__FILE__, __LINE__, 3, (p))

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::gradaccum::emu::detail::warp_gather("__syncwarp", mask, nullptr, 0, nullptr, true);
}
// Threads of a block interleave only at barriers and warp collectives: fences order nothing more.
inline void __threadfence() {
  __asm__ __volatile__("" ::: "memory");
}
inline void __threadfence_block() {
  __asm__ __volatile__("" ::: "memory");
}
inline void __threadfence_system() {
  __asm__ __volatile__("" ::: "memory");
}
[[noreturn]] inline void __trap() {
  ::gradaccum::emu::detail::fault("__trap() called");
}
[[noreturn]] inline void __brkpt() {
  ::gradaccum::emu::detail::fault("__brkpt() called");
}
inline void __nanosleep(unsigned) {}
inline long long clock64() {
  return ::gradaccum::emu::detail::clock_ticks();
}

// ---- warp collectives ----
template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  return ::gradaccum::emu::detail::shuffle("__shfl_sync", mask, var,
                                           ::gradaccum::emu::detail::kShflIdx, src_lane, width);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::gradaccum::emu::detail::shuffle("__shfl_up_sync", mask, var,
                                           ::gradaccum::emu::detail::kShflUp,
                                           static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::gradaccum::emu::detail::shuffle("__shfl_down_sync", mask, var,
                                           ::gradaccum::emu::detail::kShflDown,
                                           static_cast<int>(delta), width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  return ::gradaccum::emu::detail::shuffle("__shfl_xor_sync", mask, var,
                                           ::gradaccum::emu::detail::kShflBfly, lane_mask, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return ::gradaccum::emu::detail::vote("__ballot_sync", mask, predicate, nullptr);
}
inline int __any_sync(unsigned mask, int predicate) {
  return ::gradaccum::emu::detail::vote("__any_sync", mask, predicate, nullptr) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
  unsigned taking_part = 0;
  const unsigned bits = ::gradaccum::emu::detail::vote("__all_sync", mask, predicate, &taking_part);
  return bits == taking_part;
}
inline unsigned __activemask() {
  return ::gradaccum::emu::detail::active_mask();
}
template <typename T>
inline unsigned __match_any_sync(unsigned mask, T value) {
  return ::gradaccum::emu::detail::match_any(mask, value);
}
template <typename T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred) {
  return ::gradaccum::emu::detail::match_all(mask, value, pred);
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v) {
  return ::gradaccum::emu::detail::warp_reduce("__reduce_add_sync", mask, v,
                                               [](unsigned a, unsigned b) { return a + b; });
}
inline int __reduce_add_sync(unsigned mask, int v) {
  return static_cast<int>(__reduce_add_sync(mask, static_cast<unsigned>(v)));
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v) {
  return ::gradaccum::emu::detail::warp_reduce(
      "__reduce_min_sync", mask, v, [](unsigned a, unsigned b) { return a < b ? a : b; });
}
inline int __reduce_min_sync(unsigned mask, int v) {
  return ::gradaccum::emu::detail::warp_reduce("__reduce_min_sync", mask, v,
                                               [](int a, int b) { return a < b ? a : b; });
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v) {
  return ::gradaccum::emu::detail::warp_reduce(
      "__reduce_max_sync", mask, v, [](unsigned a, unsigned b) { return a > b ? a : b; });
}
inline int __reduce_max_sync(unsigned mask, int v) {
  return ::gradaccum::emu::detail::warp_reduce("__reduce_max_sync", mask, v,
                                               [](int a, int b) { return a > b ? a : b; });
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v) {
  return ::gradaccum::emu::detail::warp_reduce("__reduce_and_sync", mask, v,
                                               [](unsigned a, unsigned b) { return a & b; });
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v) {
  return ::gradaccum::emu::detail::warp_reduce("__reduce_or_sync", mask, v,
                                               [](unsigned a, unsigned b) { return a | b; });
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v) {
  return ::gradaccum::emu::detail::warp_reduce("__reduce_xor_sync", mask, v,
                                               [](unsigned a, unsigned b) { return a ^ b; });
}

// ---- atomics (relaxed; the *_block and *_system scopes are the same on one emulated device)
// -------
inline int atomicAdd(int* a, int v) {
  return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}
inline unsigned atomicAdd(unsigned* a, unsigned v) {
  return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  return __atomic_fetch_add(a, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* a, float v) {
  return ::gradaccum::emu::detail::atomic_update(a, [v](float old) { return old + v; });
}
inline double atomicAdd(double* a, double v) {
  return ::gradaccum::emu::detail::atomic_update(a, [v](double old) { return old + v; });
}
inline __half atomicAdd(__half* a, __half v) {
  return ::gradaccum::emu::detail::atomic_update(a, [v](__half old) { return __hadd(old, v); });
}
inline __half2 atomicAdd(__half2* a, __half2 v) {
  return ::gradaccum::emu::detail::atomic_update(a, [v](__half2 old) { return __hadd2(old, v); });
}
inline int atomicSub(int* a, int v) {
  return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED);
}
inline unsigned atomicSub(unsigned* a, unsigned v) {
  return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED);
}
inline int atomicExch(int* a, int v) {
  return __atomic_exchange_n(a, v, __ATOMIC_RELAXED);
}
inline unsigned atomicExch(unsigned* a, unsigned v) {
  return __atomic_exchange_n(a, v, __ATOMIC_RELAXED);
}
inline unsigned long long atomicExch(unsigned long long* a, unsigned long long v) {
  return __atomic_exchange_n(a, v, __ATOMIC_RELAXED);
}
inline float atomicExch(float* a, float v) {
  return ::gradaccum::emu::detail::atomic_update(a, [v](float) { return v; });
}
template <typename T>
inline T atomicCAS(T* a, T compare, T v) {
  static_assert(std::is_integral<T>::value && (sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8),
                "atomicCAS on int, unsigned, unsigned long long or unsigned short");
  __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value, whether or not the swap happened
}
template <typename T>
inline T atomicMax(T* a, T v) {
  static_assert(std::is_integral<T>::value, "atomicMax on integers");
  return ::gradaccum::emu::detail::atomic_update(a, [v](T old) { return old < v ? v : old; });
}
template <typename T>
inline T atomicMin(T* a, T v) {
  static_assert(std::is_integral<T>::value, "atomicMin on integers");
  return ::gradaccum::emu::detail::atomic_update(a, [v](T old) { return v < old ? v : old; });
}
template <typename T>
inline T atomicAnd(T* a, T v) {
  return __atomic_fetch_and(a, v, __ATOMIC_RELAXED);
}
template <typename T>
inline T atomicOr(T* a, T v) {
  return __atomic_fetch_or(a, v, __ATOMIC_RELAXED);
}
template <typename T>
inline T atomicXor(T* a, T v) {
  return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED);
}
inline unsigned atomicInc(unsigned* a, unsigned v) {
  return ::gradaccum::emu::detail::atomic_update(
      a, [v](unsigned old) { return old >= v ? 0u : old + 1u; });
}
inline unsigned atomicDec(unsigned* a, unsigned v) {
  return ::gradaccum::emu::detail::atomic_update(
      a, [v](unsigned old) { return (old == 0u || old > v) ? v : old - 1u; });
}
#define GA_EMU_SCOPED_ATOMIC(name)       \
  template <typename T, typename... V>   \
  inline T name##_block(T* a, V... v) {  \
    return name(a, v...);                \
  }                                      \
  template <typename T, typename... V>   \
  inline T name##_system(T* a, V... v) { \
    return name(a, v...);                \
  }
GA_EMU_SCOPED_ATOMIC(atomicAdd)
GA_EMU_SCOPED_ATOMIC(atomicSub)
GA_EMU_SCOPED_ATOMIC(atomicExch)
GA_EMU_SCOPED_ATOMIC(atomicCAS)
GA_EMU_SCOPED_ATOMIC(atomicMax)
GA_EMU_SCOPED_ATOMIC(atomicMin)
GA_EMU_SCOPED_ATOMIC(atomicAnd)
GA_EMU_SCOPED_ATOMIC(atomicOr)
GA_EMU_SCOPED_ATOMIC(atomicXor)
#undef GA_EMU_SCOPED_ATOMIC

// ---- loads and stores with cache hints ----
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldca(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcs(const T* p) {
  return *p;
}
template <typename T>
inline T __ldlu(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcv(const T* p) {
  return *p;
}
template <typename T>
inline void __stcg(T* p, T v) {
  *p = v;
}
template <typename T>
inline void __stcs(T* p, T v) {
  *p = v;
}
template <typename T>
inline void __stwb(T* p, T v) {
  *p = v;
}
template <typename T>
inline void __stwt(T* p, T v) {
  *p = v;
}

// ---- integer and bit intrinsics ----
inline int __popc(unsigned x) {
  return __builtin_popcount(x);
}
inline int __popcll(unsigned long long x) {
  return __builtin_popcountll(x);
}
inline int __clz(int x) {
  return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x));
}
inline int __clzll(long long x) {
  return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x));
}
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline int __ffsll(long long x) {
  return __builtin_ffsll(x);
}
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned long long __brevll(unsigned long long x) {
  return (static_cast<unsigned long long>(__brev(static_cast<unsigned>(x))) << 32) |
         __brev(static_cast<unsigned>(x >> 32));
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
  const unsigned long long v = (static_cast<unsigned long long>(y) << 32) | x;
  unsigned r = 0;
  for (int i = 0; i < 4; ++i) {
    const unsigned sel = (s >> (4 * i)) & 7u;
    r |= static_cast<unsigned>((v >> (8 * sel)) & 0xffu) << (8 * i);
  }
  return r;
}
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (shift & 31u)) >> 32);
}
inline unsigned __funnelshift_lc(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>((v << (shift > 32u ? 32u : shift)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (shift & 31u));
}
inline unsigned __funnelshift_rc(unsigned lo, unsigned hi, unsigned shift) {
  const unsigned long long v = (static_cast<unsigned long long>(hi) << 32) | lo;
  return static_cast<unsigned>(v >> (shift > 32u ? 32u : shift));
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) {
  return static_cast<int>((static_cast<long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  __extension__ typedef unsigned __int128 u128;
  return static_cast<unsigned long long>((static_cast<u128>(a) * b) >> 64);
}
inline long long __mul64hi(long long a, long long b) {
  __extension__ typedef __int128 i128;
  return static_cast<long long>((static_cast<i128>(a) * b) >> 64);
}
inline int __mul24(int a, int b) {
  return static_cast<int>(static_cast<unsigned>(((a << 8) >> 8) * ((b << 8) >> 8)));
}
inline unsigned __umul24(unsigned a, unsigned b) {
  return (a & 0xffffffu) * (b & 0xffffffu);
}
inline unsigned __sad(int x, int y, unsigned z) {
  return z + static_cast<unsigned>(x > y ? x - y : y - x);
}
inline unsigned __usad(unsigned x, unsigned y, unsigned z) {
  return z + (x > y ? x - y : y - x);
}
inline float __int_as_float(int x) {
  return ::gradaccum::emu::detail::bit_cast<float>(x);
}
inline int __float_as_int(float x) {
  return ::gradaccum::emu::detail::bit_cast<int>(x);
}
inline float __uint_as_float(unsigned x) {
  return ::gradaccum::emu::detail::bit_cast<float>(x);
}
inline unsigned __float_as_uint(float x) {
  return ::gradaccum::emu::detail::bit_cast<unsigned>(x);
}
inline double __longlong_as_double(long long x) {
  return ::gradaccum::emu::detail::bit_cast<double>(x);
}
inline long long __double_as_longlong(double x) {
  return ::gradaccum::emu::detail::bit_cast<long long>(x);
}
inline int __double2hiint(double x) {
  return static_cast<int>(__double_as_longlong(x) >> 32);
}
inline int __double2loint(double x) {
  return static_cast<int>(__double_as_longlong(x));
}
inline double __hiloint2double(int hi, int lo) {
  return __longlong_as_double(
      static_cast<long long>((static_cast<unsigned long long>(static_cast<unsigned>(hi)) << 32) |
                             static_cast<unsigned>(lo)));
}

// CUDA's global min/max overloads.
inline int min(int a, int b) {
  return a < b ? a : b;
}
inline int max(int a, int b) {
  return a > b ? a : b;
}
inline unsigned min(unsigned a, unsigned b) {
  return a < b ? a : b;
}
inline unsigned max(unsigned a, unsigned b) {
  return a > b ? a : b;
}
inline unsigned min(int a, unsigned b) {
  return min(static_cast<unsigned>(a), b);
}
inline unsigned max(int a, unsigned b) {
  return max(static_cast<unsigned>(a), b);
}
inline unsigned min(unsigned a, int b) {
  return min(a, static_cast<unsigned>(b));
}
inline unsigned max(unsigned a, int b) {
  return max(a, static_cast<unsigned>(b));
}
inline long min(long a, long b) {
  return a < b ? a : b;
}
inline long max(long a, long b) {
  return a > b ? a : b;
}
inline unsigned long min(unsigned long a, unsigned long b) {
  return a < b ? a : b;
}
inline unsigned long max(unsigned long a, unsigned long b) {
  return a > b ? a : b;
}
inline long long min(long long a, long long b) {
  return a < b ? a : b;
}
inline long long max(long long a, long long b) {
  return a > b ? a : b;
}
inline unsigned long long min(unsigned long long a, unsigned long long b) {
  return a < b ? a : b;
}
inline unsigned long long max(unsigned long long a, unsigned long long b) {
  return a > b ? a : b;
}
inline float min(float a, float b) {
  return fminf(a, b);
}
inline float max(float a, float b) {
  return fmaxf(a, b);
}
inline double min(double a, double b) {
  return fmin(a, b);
}
inline double max(double a, double b) {
  return fmax(a, b);
}
inline double min(float a, double b) {
  return fmin(a, b);
}
inline double max(float a, double b) {
  return fmax(a, b);
}
inline double min(double a, float b) {
  return fmin(a, b);
}
inline double max(double a, float b) {
  return fmax(a, b);
}

// ---- floating-point intrinsics ----
// Round to nearest even: the host's own arithmetic (builds compile with -ffp-contract=off, so
// nothing else gets fused; -mfma makes fmaf an instruction).
inline float __fadd_rn(float a, float b) {
  return a + b;
}
inline float __fsub_rn(float a, float b) {
  return a - b;
}
inline float __fmul_rn(float a, float b) {
  return a * b;
}
inline float __fmaf_rn(float a, float b, float c) {
  return __builtin_fmaf(a, b, c);
}
inline float __fdiv_rn(float a, float b) {
  return a / b;
}
inline float __frcp_rn(float a) {
  return 1.0f / a;
}
inline float __fsqrt_rn(float a) {
  return std::sqrt(a);
}
inline double __dadd_rn(double a, double b) {
  return a + b;
}
inline double __dsub_rn(double a, double b) {
  return a - b;
}
inline double __dmul_rn(double a, double b) {
  return a * b;
}
inline double __fma_rn(double a, double b, double c) {
  return __builtin_fma(a, b, c);
}
inline double __ddiv_rn(double a, double b) {
  return a / b;
}
inline double __drcp_rn(double a) {
  return 1.0 / a;
}
inline double __dsqrt_rn(double a) {
  return std::sqrt(a);
}

#define GA_EMU_DIRECTED(suffix, mode)                                                            \
  inline float __fadd_##suffix(float a, float b) {                                               \
    return ::gradaccum::emu::detail::fop_directed(::gradaccum::emu::detail::kOpAdd, mode, a, b,  \
                                                  0);                                            \
  }                                                                                              \
  inline float __fsub_##suffix(float a, float b) {                                               \
    return ::gradaccum::emu::detail::fop_directed(::gradaccum::emu::detail::kOpSub, mode, a, b,  \
                                                  0);                                            \
  }                                                                                              \
  inline float __fmul_##suffix(float a, float b) {                                               \
    return ::gradaccum::emu::detail::fop_directed(::gradaccum::emu::detail::kOpMul, mode, a, b,  \
                                                  0);                                            \
  }                                                                                              \
  inline float __fmaf_##suffix(float a, float b, float c) {                                      \
    return ::gradaccum::emu::detail::fop_directed(::gradaccum::emu::detail::kOpFma, mode, a, b,  \
                                                  c);                                            \
  }                                                                                              \
  inline float __fdiv_##suffix(float a, float b) {                                               \
    return ::gradaccum::emu::detail::fop_directed(::gradaccum::emu::detail::kOpDiv, mode, a, b,  \
                                                  0);                                            \
  }                                                                                              \
  inline float __frcp_##suffix(float a) {                                                        \
    return ::gradaccum::emu::detail::fop_directed(::gradaccum::emu::detail::kOpRcp, mode, a, 0,  \
                                                  0);                                            \
  }                                                                                              \
  inline float __fsqrt_##suffix(float a) {                                                       \
    return ::gradaccum::emu::detail::fop_directed(::gradaccum::emu::detail::kOpSqrt, mode, a, 0, \
                                                  0);                                            \
  }                                                                                              \
  inline double __dadd_##suffix(double a, double b) {                                            \
    return ::gradaccum::emu::detail::dop_directed(::gradaccum::emu::detail::kOpAdd, mode, a, b,  \
                                                  0);                                            \
  }                                                                                              \
  inline double __dsub_##suffix(double a, double b) {                                            \
    return ::gradaccum::emu::detail::dop_directed(::gradaccum::emu::detail::kOpSub, mode, a, b,  \
                                                  0);                                            \
  }                                                                                              \
  inline double __dmul_##suffix(double a, double b) {                                            \
    return ::gradaccum::emu::detail::dop_directed(::gradaccum::emu::detail::kOpMul, mode, a, b,  \
                                                  0);                                            \
  }                                                                                              \
  inline double __fma_##suffix(double a, double b, double c) {                                   \
    return ::gradaccum::emu::detail::dop_directed(::gradaccum::emu::detail::kOpFma, mode, a, b,  \
                                                  c);                                            \
  }                                                                                              \
  inline double __ddiv_##suffix(double a, double b) {                                            \
    return ::gradaccum::emu::detail::dop_directed(::gradaccum::emu::detail::kOpDiv, mode, a, b,  \
                                                  0);                                            \
  }
GA_EMU_DIRECTED(rz, 1)
GA_EMU_DIRECTED(ru, 2)
GA_EMU_DIRECTED(rd, 3)
#undef GA_EMU_DIRECTED

inline float __saturatef(float x) {
  return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x));
}
inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline double rsqrt(double x) {
  return 1.0 / std::sqrt(x);
}
inline float __frsqrt_rn(float x) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(x)));
}
inline float __fdividef(float x, float y) {
  const float ay = std::fabs(y);
  if (ay > 8.507059173e37f && ay <= 3.402823466e38f) return std::isinf(x) ? x / y : 0.0f * x;
  return x * (1.0f / y);
}
inline float __expf(float x) {
  return std::exp2(x * 1.44269504088896341f);
}
inline float __exp10f(float x) {
  return std::exp2(x * 3.32192809488736235f);
}
inline float __log2f(float x) {
  return std::log2(x);
}
inline float __logf(float x) {
  return std::log2(x) * 0.693147180559945309f;
}
inline float __log10f(float x) {
  return std::log2(x) * 0.301029995663981195f;
}
inline float __sinf(float x) {
  return ::gradaccum::emu::detail::approx_sin_cos(x, false);
}
inline float __cosf(float x) {
  return ::gradaccum::emu::detail::approx_sin_cos(x, true);
}
inline void __sincosf(float x, float* s, float* c) {
  *s = __sinf(x);
  *c = __cosf(x);
}
inline float __tanf(float x) {
  return __sinf(x) / __cosf(x);
}
inline float __powf(float x, float y) {
  return std::exp2(y * std::log2(x));
}

inline int __float2int_rn(float x) {
  return static_cast<int>(::gradaccum::emu::detail::f2ll(x, 0, INT32_MIN, INT32_MAX));
}
inline int __float2int_rz(float x) {
  return static_cast<int>(::gradaccum::emu::detail::f2ll(x, 1, INT32_MIN, INT32_MAX));
}
inline int __float2int_ru(float x) {
  return static_cast<int>(::gradaccum::emu::detail::f2ll(x, 2, INT32_MIN, INT32_MAX));
}
inline int __float2int_rd(float x) {
  return static_cast<int>(::gradaccum::emu::detail::f2ll(x, 3, INT32_MIN, INT32_MAX));
}
inline unsigned __float2uint_rn(float x) {
  return static_cast<unsigned>(::gradaccum::emu::detail::f2ll(x, 0, 0, UINT32_MAX));
}
inline unsigned __float2uint_rz(float x) {
  return static_cast<unsigned>(::gradaccum::emu::detail::f2ll(x, 1, 0, UINT32_MAX));
}
inline unsigned __float2uint_ru(float x) {
  return static_cast<unsigned>(::gradaccum::emu::detail::f2ll(x, 2, 0, UINT32_MAX));
}
inline unsigned __float2uint_rd(float x) {
  return static_cast<unsigned>(::gradaccum::emu::detail::f2ll(x, 3, 0, UINT32_MAX));
}
inline long long __float2ll_rn(float x) {
  return ::gradaccum::emu::detail::f2ll(x, 0, INT64_MIN, INT64_MAX);
}
inline long long __float2ll_rz(float x) {
  return ::gradaccum::emu::detail::f2ll(x, 1, INT64_MIN, INT64_MAX);
}
inline long long __double2ll_rn(double x) {
  return ::gradaccum::emu::detail::f2ll(x, 0, INT64_MIN, INT64_MAX);
}
inline int __double2int_rn(double x) {
  return static_cast<int>(::gradaccum::emu::detail::f2ll(x, 0, INT32_MIN, INT32_MAX));
}
inline int __double2int_rz(double x) {
  return static_cast<int>(::gradaccum::emu::detail::f2ll(x, 1, INT32_MIN, INT32_MAX));
}
inline unsigned long long __float2ull_rn(float x) {
  return ::gradaccum::emu::detail::f2ull(x, 0);
}
inline unsigned long long __float2ull_rz(float x) {
  return ::gradaccum::emu::detail::f2ull(x, 1);
}
inline float __int2float_rn(int x) {
  return static_cast<float>(x);
}
inline float __uint2float_rn(unsigned x) {
  return static_cast<float>(x);
}
inline float __ll2float_rn(long long x) {
  return static_cast<float>(x);
}
inline float __ull2float_rn(unsigned long long x) {
  return static_cast<float>(x);
}
inline double __int2double_rn(int x) {
  return static_cast<double>(x);
}
inline float __double2float_rn(double x) {
  return static_cast<float>(x);
}

// ---- half precision: what cuda_fp16.hpp leaves to the device ----
// __hfma: the exact a*b+c in double (exact for every finite half result), rounded once to half.
// (A float fma rounded to half rounds twice, and is wrong for some inputs.)
inline __half __hfma(const __half a, const __half b, const __half c) {
  const double r =
      __builtin_fma(static_cast<double>(__half2float(a)), static_cast<double>(__half2float(b)),
                    static_cast<double>(__half2float(c)));
  __half_raw raw;
  raw.x = ::gradaccum::emu::detail::double_to_half_bits(r);
  return __half(raw);
}
inline __half __hfma_sat(const __half a, const __half b, const __half c) {
  const float r = __half2float(__hfma(a, b, c));
  return __float2half_rn(r != r ? 0.0f : (r < 0.0f ? 0.0f : (r > 1.0f ? 1.0f : r)));
}
inline __half __hfma_relu(const __half a, const __half b, const __half c) {
  const __half r = __hfma(a, b, c);
  const float f = __half2float(r);
  return f != f ? r : (f < 0.0f ? __float2half_rn(0.0f) : r);
}
inline __half2 __hfma2(const __half2 a, const __half2 b, const __half2 c) {
  return __halves2half2(__hfma(__low2half(a), __low2half(b), __low2half(c)),
                        __hfma(__high2half(a), __high2half(b), __high2half(c)));
}
inline __half hsqrt(const __half a) {
  __half_raw raw;
  raw.x = ::gradaccum::emu::detail::double_to_half_bits(
      std::sqrt(static_cast<double>(__half2float(a))));
  return __half(raw);
}
inline __half hrcp(const __half a) {
  __half_raw raw;
  raw.x = ::gradaccum::emu::detail::double_to_half_bits(1.0 / __half2float(a));
  return __half(raw);
}
inline __half hexp(const __half a) {
  return __float2half_rn(std::exp(__half2float(a)));
}
inline __half hlog(const __half a) {
  return __float2half_rn(std::log(__half2float(a)));
}

#endif  // GRADACCUM_EMU_CUDA_EMU_H_
