// The MPI tests' process group: every rank runs the same tests in the same order (mpi_main.cpp),
// so each test may make collective calls. Tests fail with EXPECT_* after a collective, never
// return early on one rank only (the others would wait in the next collective).
#pragma once

#include <memory>

#include "dist/process_group.h"

namespace gradaccum::test {

dist::ProcessGroup& world();
std::shared_ptr<dist::ProcessGroup> world_ptr();

}  // namespace gradaccum::test
