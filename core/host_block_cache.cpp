#include "core/host_block_cache.h"

#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "core/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define GA_HOST_CACHE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GA_HOST_CACHE_ASAN 1
#endif
#endif
#if GA_HOST_CACHE_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace gradaccum::host_cache {
namespace {

constexpr std::align_val_t kAlignment{64};  // a cache line, and enough for AVX-512 loads

void poison(void* ptr, std::size_t bytes) {
#if GA_HOST_CACHE_ASAN
  ASAN_POISON_MEMORY_REGION(ptr, bytes);
#else
  (void)ptr;
  (void)bytes;
#endif
}
void unpoison(void* ptr, std::size_t bytes) {
#if GA_HOST_CACHE_ASAN
  ASAN_UNPOISON_MEMORY_REGION(ptr, bytes);
#else
  (void)ptr;
  (void)bytes;
#endif
}

struct Cache {
  std::mutex mutex;
  std::multimap<std::size_t, void*> blocks;  // size -> block
  std::size_t capacity = std::size_t{512} << 20;
  HostCacheStats stats;

  // Frees the largest blocks until at most `limit` bytes stay. Holds the mutex.
  void shrink_to(std::size_t limit) noexcept {
    while (stats.cached_bytes > limit && !blocks.empty()) {
      auto last = std::prev(blocks.end());
      unpoison(last->second, last->first);
      ::operator delete(last->second, kAlignment);
      stats.cached_bytes -= last->first;
      blocks.erase(last);
    }
  }
};

// Never destroyed: tensors with static storage duration may be freed after any destructor here
// would have run. Its blocks stay reachable through it (not leaks).
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

}  // namespace

void* allocate(std::size_t bytes) {
  if (bytes >= kMinCachedBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.blocks.find(bytes);
    if (it != c.blocks.end()) {
      void* ptr = it->second;
      c.blocks.erase(it);
      c.stats.cached_bytes -= bytes;
      c.stats.hits += 1;
      unpoison(ptr, bytes);
      return ptr;
    }
    c.stats.misses += 1;
  }
  // Aligned operator new rounds the size up to the alignment: sizes within the alignment of
  // SIZE_MAX would wrap to a tiny block (libstdc++), so they fail here as they would anyway.
  constexpr std::size_t kMaxBytes =
      std::numeric_limits<std::size_t>::max() - static_cast<std::size_t>(kAlignment);
  try {
    if (bytes > kMaxBytes) throw std::bad_alloc();
    return ::operator new(bytes, kAlignment);
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryError("out of host memory allocating " + std::to_string(bytes) + " bytes",
                           bytes, __FILE__, __LINE__);
  }
}

void release(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) return;
  if (bytes >= kMinCachedBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (bytes <= c.capacity - c.stats.cached_bytes) {
      try {
        c.blocks.emplace(bytes, ptr);
        c.stats.cached_bytes += bytes;
        poison(ptr, bytes);
        return;
      } catch (...) {  // no memory for the map node: free the block instead
      }
    }
  }
  ::operator delete(ptr, kAlignment);
}

void empty() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.shrink_to(0);
}

void set_capacity(std::size_t bytes) noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.capacity = bytes;
  c.shrink_to(bytes);
}

std::size_t capacity() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.capacity;
}

HostCacheStats stats() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

}  // namespace gradaccum::host_cache
