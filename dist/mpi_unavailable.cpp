// dist/mpi.h in a build without MPI: the environment cannot start, the world cannot be made.
#include "dist/mpi.h"

namespace gradaccum::dist {
namespace {
[[noreturn]] void no_mpi(const char* what) {
  GA_FAIL(what << ": gradaccum was built without MPI (GRADACCUM_MPI=OFF, or no MPI was found: "
                  "install libopenmpi-dev and reconfigure)");
}
}  // namespace

bool mpi_built() {
  return false;
}
MpiEnvironment::MpiEnvironment() {
  no_mpi("MpiEnvironment");
}
MpiEnvironment::~MpiEnvironment() = default;
bool MpiEnvironment::cuda_aware() {
  return false;
}
std::string MpiEnvironment::library_version() {
  return "none";
}
std::shared_ptr<ProcessGroup> mpi_world(const MpiOptions&) {
  no_mpi("mpi_world");
}

}  // namespace gradaccum::dist
