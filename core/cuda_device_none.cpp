// The CUDA device in a build without CUDA support: there is none.
#include "core/cuda_device.h"
#include "core/error.h"

namespace gradaccum {

bool built_with_cuda() {
  return false;
}
int cuda_device_count() {
  return 0;
}
bool cuda_available() {
  return false;
}
std::string cuda_device_name() {
  GA_FAIL("gradaccum was built without CUDA support");
}
void cuda_synchronize() {}
std::size_t cuda_bytes_in_use() {
  return 0;
}
namespace {
std::size_t g_limit = 0;  // kept for cuda_memory_limit(): nothing is ever allocated here
}  // namespace
void set_cuda_memory_limit(std::size_t bytes) {
  g_limit = bytes;
}
std::size_t cuda_memory_limit() {
  return g_limit;
}

namespace detail {
void* cuda_allocate(std::size_t) {
  GA_FAIL(
      "a CUDA tensor needs CUDA support, and gradaccum was built without it "
      "(GRADACCUM_CUDA=OFF)");
}
void cuda_release(void*, std::size_t) noexcept {}
void cuda_copy(void*, const void*, std::size_t, CopyKind) {
  GA_FAIL("gradaccum was built without CUDA support");
}
void cuda_copy_async(void*, const void*, std::size_t, CopyKind) {
  GA_FAIL("gradaccum was built without CUDA support");
}
void cuda_zero(void*, std::size_t) {
  GA_FAIL("gradaccum was built without CUDA support");
}
void* cuda_host_allocate(std::size_t) {
  return nullptr;
}
void cuda_host_release(void*) noexcept {}
}  // namespace detail

}  // namespace gradaccum
