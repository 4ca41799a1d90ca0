// What the launcher's environment says, and the default timeout: plain C++, in every build.
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "dist/mpi.h"

namespace gradaccum::dist {
namespace {

// The first of these variables that is set, as a non-negative integer; -1 when none is.
int env_int(std::initializer_list<const char*> names) {
  for (const char* n : names) {
    const char* v = std::getenv(n);
    if (v == nullptr || *v == '\0') continue;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (end != nullptr && *end == '\0' && x >= 0 && x < (1L << 30)) return static_cast<int>(x);
  }
  return -1;
}

}  // namespace

double MpiOptions::default_timeout_seconds() {
  const char* v = std::getenv("GRADACCUM_DIST_TIMEOUT_S");
  if (v != nullptr && *v != '\0') {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    if (end != nullptr && *end == '\0') return s;
  }
  return 300.0;
}

bool launched_by_mpi() {
  return env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) > 0 ||
         env_int({"PMIX_RANK"}) >= 0;
}

int launcher_rank() {
  const int r = env_int({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"});
  return r < 0 ? 0 : r;
}

int launcher_size() {
  const int n = env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"});
  return n <= 0 ? 1 : n;
}

}  // namespace gradaccum::dist
