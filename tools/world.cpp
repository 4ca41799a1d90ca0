#include "world.h"

#include <cstdio>
#include <exception>
#include <string>

#include "core/error.h"
#include "dist/group_error.h"
#include "flags.h"

namespace gradaccum::tools {

namespace {

// Rank 0 prints `line`; then every rank waits for the others, so that no rank's exit can end the
// job before the line is out (every rank reaches this together).
int report_once(const World& world, const std::string& line, int status) {
  if (world.root()) {
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }
  if (world.group) world.group->barrier();
  return status;
}

}  // namespace

int run_in_world(const char* program, const std::function<double()>& parse,
                 const std::function<int(const World&)>& body) {
  const std::string name = program;
  // Under a launcher, join the group first: a bad flag, seen by every rank, is then printed by
  // rank 0 alone and every rank exits together (mpirun would otherwise end rank 0 when the
  // first other rank exits, perhaps before it printed).
  std::unique_ptr<dist::MpiEnvironment> mpi;
  World world;
  try {
    if (dist::launched_by_mpi() && dist::launcher_size() > 1) {
      GA_CHECK(dist::mpi_built(), "started by an MPI launcher as " << dist::launcher_size()
                                                                   << " processes, but this "
                                                                      "build has no MPI "
                                                                      "(GRADACCUM_MPI=OFF)");
      mpi = std::make_unique<dist::MpiEnvironment>();
      world.group = dist::mpi_world();
      world.rank = world.group->rank();
      world.size = world.group->size();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, plain_message(e).c_str());
    return 1;
  }
  try {
    const double timeout_seconds = parse();
    if (world.group) {
      // The group's collectives from here on are bounded by the parsed timeout.
      world.group.reset();
      world.group = dist::mpi_world(dist::MpiOptions().timeout_seconds(timeout_seconds));
    }
  } catch (const FlagError& e) {
    return report_once(world, name + ": " + e.what(), 2);
  } catch (const std::exception& e) {
    return report_once(world, name + ": error: " + plain_message(e), 1);
  }
  try {
    const int rc = body(world);
    world.group.reset();
    return rc;
  } catch (const FlagError& e) {
    return report_once(world, name + ": " + e.what(), 2);
  } catch (const dist::GroupError& e) {
    return report_once(world, name + ": error: " + plain_message(e), 1);
  } catch (const std::exception& e) {
    const std::string line = name + ": error: " + plain_message(e);
    if (world.group) world.group->abort(line, 1);
    std::fprintf(stderr, "%s\n", line.c_str());
    return 1;
  }
}

}  // namespace gradaccum::tools
