#include "core/launch.cuh"

#include <sstream>

namespace gradaccum::detail {

void check_launch_geometry(const char* name, const char* file, int line, dim3 grid, dim3 block,
                           std::size_t shared_bytes) {
  const unsigned long long threads = static_cast<unsigned long long>(block.x) * block.y * block.z;
  std::ostringstream why;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0) {
    why << "empty launch geometry grid(" << grid.x << "," << grid.y << "," << grid.z << ") block("
        << block.x << "," << block.y << "," << block.z << ")";
  } else if (threads > kMaxThreadsPerBlock || block.z > kMaxBlockZ) {
    why << "block(" << block.x << "," << block.y << "," << block.z << ") has " << threads
        << " threads; sm_90 allows at most " << kMaxThreadsPerBlock << " (z <= " << kMaxBlockZ
        << ")";
  } else if (grid.x > kMaxGridX || grid.y > kMaxGridYZ || grid.z > kMaxGridYZ) {
    why << "grid(" << grid.x << "," << grid.y << "," << grid.z
        << ") exceeds sm_90's limits (x <= " << kMaxGridX << ", y, z <= " << kMaxGridYZ << ")";
  } else if (shared_bytes > kMaxSharedBytesPerBlock) {
    why << shared_bytes << " bytes of shared memory requested; sm_90 allows at most "
        << kMaxSharedBytesPerBlock;
  } else {
    return;
  }
  throw_error(file, line, name, "invalid launch of " + std::string(name) + ": " + why.str());
}

}  // namespace gradaccum::detail
