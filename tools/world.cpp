#include "world.h"

#include <cstdio>
#include <exception>
#include <string>

#include "core/error.h"
#include "dist/group_error.h"
#include "flags.h"

namespace gradaccum::tools {

int run_in_world(const char* program, const std::function<double()>& parse,
                 const std::function<int(const World&)>& body) {
  // Before MPI: only the launcher's environment says which rank this is.
  const bool root = dist::launcher_rank() == 0;
  double timeout_seconds = 0;
  try {
    timeout_seconds = parse();
  } catch (const FlagError& e) {
    if (root) std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "%s: error: %s\n", program, plain_message(e).c_str());
    return 1;
  }
  std::unique_ptr<dist::MpiEnvironment> mpi;
  World world;
  try {
    if (dist::launched_by_mpi() && dist::launcher_size() > 1) {
      GA_CHECK(dist::mpi_built(), "started by an MPI launcher as " << dist::launcher_size()
                                                                   << " processes, but this "
                                                                      "build has no MPI "
                                                                      "(GRADACCUM_MPI=OFF)");
      mpi = std::make_unique<dist::MpiEnvironment>();
      world.group = dist::mpi_world(dist::MpiOptions().timeout_seconds(timeout_seconds));
      world.rank = world.group->rank();
      world.size = world.group->size();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, plain_message(e).c_str());
    return 1;
  }
  try {
    const int rc = body(world);
    world.group.reset();
    return rc;
  } catch (const FlagError& e) {
    if (world.root()) std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  } catch (const dist::GroupError& e) {
    if (world.root()) std::fprintf(stderr, "%s: error: %s\n", program, plain_message(e).c_str());
    return 1;
  } catch (const std::exception& e) {
    const std::string line = std::string(program) + ": error: " + plain_message(e);
    if (world.group) world.group->abort(line, 1);
    std::fprintf(stderr, "%s\n", line.c_str());
    return 1;
  }
}

}  // namespace gradaccum::tools
