// Device helpers shared by the elementwise CUDA kernels (ReLU, L1 loss, accumulation, SGD):
// launch geometry for grid-stride loops and 16-byte vectorised loads/stores of packs of 8
// elements. Include from .cu files only; private to kernels/.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace gradaccum::cuda::ew {

// Every elementwise kernel works on packs of kPack elements: 32 bytes of f32 (two 16-byte
// accesses) or 16 bytes of f16 (one), so one thread has several independent loads in flight.
constexpr int kPack = 8;
constexpr int kBlock = 256;
// Enough blocks to fill an H100 (132 SMs x 8 resident 256-thread blocks) about twice; larger
// tensors are covered by the grid-stride loops.
constexpr std::int64_t kMaxBlocks = 2048;

// Blocks for `units` independent work items (one per thread, grid-stride beyond that).
inline dim3 grid_for(std::int64_t units) {
  std::int64_t blocks = (units + kBlock - 1) / kBlock;
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxBlocks) blocks = kMaxBlocks;
  return dim3(static_cast<unsigned>(blocks));
}

// Geometry for n elements processed in packs of kPack (plus a scalar tail).
inline dim3 grid_for_elements(std::int64_t n) {
  return grid_for((n + kPack - 1) / kPack);
}

// The Kahan step (kernels/accumulate.h's convention: the sum is ~ acc + comp), every operation
// rounded explicitly; the device twin of kahan_add in kernels/gemm_problem.h.
__device__ __forceinline__ void kahan_add(float& acc, float& comp, float y) {
  const float yc = __fadd_rn(y, comp);
  const float t = __fadd_rn(acc, yc);
  comp = __fsub_rn(yc, __fsub_rn(t, acc));
  acc = t;
}

// ---- several tensors in one launch ----
// Up to kMaxSegments tensors share a grid: blocks [begin[i], begin[i + 1]) serve tensor i, as
// many as its own launch would have, each thread striding over that tensor alone.
constexpr int kMaxSegments = 8;

struct Segments {
  int count = 0;
  int begin[kMaxSegments + 1] = {};
  std::int64_t n[kMaxSegments] = {};
  bool vec[kMaxSegments] = {};
};

// Appends a tensor of n elements (vec: its 16-byte path is possible); the grid is begin[count].
inline void add_segment(Segments& sg, std::int64_t n, bool vec) {
  const int i = sg.count++;
  sg.n[i] = n;
  sg.vec[i] = vec;
  sg.begin[i + 1] = sg.begin[i] + static_cast<int>(grid_for_elements(n).x);
}

// Launches over `count` tensors in groups of kMaxSegments: for each group, fill(args, j) for its
// tensors (adding a segment, or nothing for an empty one), then launch(args, grid) unless the
// group came out empty. Args: a kernel argument struct with a Segments member `sg`.
template <typename Args, typename Fill, typename Launch>
void launch_in_groups(int count, const Fill& fill, const Launch& launch) {
  for (int base = 0; base < count; base += kMaxSegments) {
    Args args{};
    for (int j = base; j < count && j < base + kMaxSegments; ++j)
      fill(args, j);
    if (args.sg.count > 0) launch(args, dim3(static_cast<unsigned>(args.sg.begin[args.sg.count])));
  }
}

// This block's tensor, and this thread's first pack and the stride within it.
__device__ __forceinline__ int segment_of(const Segments& sg, std::int64_t& first,
                                          std::int64_t& stride) {
  const int block = static_cast<int>(blockIdx.x);
  int i = 0;
  while (block >= sg.begin[i + 1])
    ++i;
  first = static_cast<std::int64_t>(block - sg.begin[i]) * blockDim.x + threadIdx.x;
  stride = static_cast<std::int64_t>(sg.begin[i + 1] - sg.begin[i]) * blockDim.x;
  return i;
}

// True when p is null or 16-byte aligned (the vectorised path needs every pointer aligned).
inline bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// f16 data crosses the launcher boundary as 16-bit patterns and is __half in the kernels.
__host__ __device__ inline const __half* as_half(const std::uint16_t* p) {
  return reinterpret_cast<const __half*>(p);
}
__host__ __device__ inline __half* as_half(std::uint16_t* p) {
  return reinterpret_cast<__half*>(p);
}

template <typename T>
struct Pack {
  T v[kPack];
};

template <typename T>
__device__ __forceinline__ Pack<T> load_pack(const T* base, std::int64_t pack) {
  static_assert((kPack * sizeof(T)) % 16 == 0, "a pack is a whole number of 16-byte words");
  constexpr int kWords = static_cast<int>(kPack * sizeof(T) / 16);
  const uint4* src = reinterpret_cast<const uint4*>(base) + pack * kWords;
  uint4 words[kWords];
#pragma unroll
  for (int j = 0; j < kWords; ++j)
    words[j] = src[j];
  Pack<T> p;
  memcpy(static_cast<void*>(&p), words, sizeof p);
  return p;
}

template <typename T>
__device__ __forceinline__ void store_pack(T* base, std::int64_t pack, const Pack<T>& p) {
  constexpr int kWords = static_cast<int>(kPack * sizeof(T) / 16);
  uint4 words[kWords];
  memcpy(words, static_cast<const void*>(&p), sizeof p);
  uint4* dst = reinterpret_cast<uint4*>(base) + pack * kWords;
#pragma unroll
  for (int j = 0; j < kWords; ++j)
    dst[j] = words[j];
}

__device__ __forceinline__ std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_threads() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

__device__ __forceinline__ bool finite_f32(float x) {
  // Exponent field not all ones (no isfinite from the host library in device code).
  std::uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  return (bits & 0x7F800000u) != 0x7F800000u;
}
__device__ __forceinline__ bool finite_f16(__half h) {
  return (__half_as_ushort(h) & 0x7C00u) != 0x7C00u;
}

// The flag word of a NonFiniteFlag: kernels only ever raise it. Many threads may raise it in
// one launch, so the store is atomic (a plain store would be a data race, which TSan reports on
// the emulated device).
__device__ __forceinline__ void raise_flag(std::uint32_t* flag) {
  if (flag != nullptr) atomicOr(reinterpret_cast<unsigned int*>(flag), 1u);
}
// A raised skip_if flag means the kernel does nothing (decided on the device, no host sync).
__device__ __forceinline__ bool skipped(const std::uint32_t* skip_if) {
  return skip_if != nullptr && *skip_if != 0u;
}

}  // namespace gradaccum::cuda::ew
