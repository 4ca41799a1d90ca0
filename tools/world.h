// The programs' processes: under mpirun (-np N) every process joins one dist::ProcessGroup; run
// alone, a program is world 1 and never touches MPI.
//
// Errors become one line: a FlagError (the same on every rank: they all parse the same flags)
// and a dist::GroupError (raised by every rank together) are printed by rank 0 only and every
// rank exits normally; any other error on a rank of a world of several aborts the whole group at
// once ("rank R: program: error: ..."), so that no rank waits for it.
#pragma once

#include <functional>
#include <memory>

#include "dist/mpi.h"

namespace gradaccum::tools {

struct World {
  int rank = 0;
  int size = 1;
  std::shared_ptr<dist::ProcessGroup> group;  // null for world 1
  bool root() const { return rank == 0; }
};

// Runs `parse` (it parses the flags, may throw FlagError, and returns the collective timeout in
// seconds: dist::MpiOptions), then `body` in the world this process was launched into. Returns
// the exit status: 0, 1 (error) or 2 (bad flag).
int run_in_world(const char* program, const std::function<double()>& parse,
                 const std::function<int(const World&)>& body);

}  // namespace gradaccum::tools
