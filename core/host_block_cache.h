// Host memory for tensors: 64-byte aligned blocks, with the large ones kept for reuse.
//
// A training step allocates and frees the same activation and gradient buffers every
// micro-step. Blocks of 64 KiB and more come from mmap (or the top of the heap) and go back to the
// kernel when freed, so every micro-step page-faults them in again and the kernel zeroes each
// page (measured: ~2000 faults per step of the 256-1024-8 MLP at B = 1024). Freed blocks of at
// least kMinCachedBytes are kept here, by exact size, up to a total of capacity() bytes, and
// handed out again to the next request of that size. Small blocks go straight to the allocator.
// Thread-safe. Under AddressSanitizer a kept block is poisoned, so a use after free still reports.
#pragma once

#include <cstddef>

namespace gradaccum {

struct HostCacheStats {
  std::size_t cached_bytes = 0;  // held for reuse now
  std::size_t hits = 0;          // allocations served from the cache
  std::size_t misses = 0;        // cacheable allocations that went to the allocator
};

namespace host_cache {

constexpr std::size_t kMinCachedBytes = std::size_t{64} << 10;

// Throws OutOfMemoryError naming the bytes. bytes > 0.
void* allocate(std::size_t bytes);
// `bytes` as given to allocate. Never throws.
void release(void* ptr, std::size_t bytes) noexcept;

// Returns every kept block to the allocator (like torch.cuda.empty_cache for the host).
void empty() noexcept;
// Most bytes kept at once (default 512 MiB; 0 disables the cache and empties it).
void set_capacity(std::size_t bytes) noexcept;
std::size_t capacity() noexcept;
HostCacheStats stats() noexcept;

}  // namespace host_cache
}  // namespace gradaccum
