// The MPI backend of dist::ProcessGroup, and the process's MPI environment:
//
//   dist::MpiEnvironment mpi;                       // MPI_Init ... MPI_Finalize
//   auto pg = dist::mpi_world();                    // every process of mpirun -np N
//   optim::AccumulationWindow window(params, optim::WindowOptions().process_group(pg));
//
// The step's reduction is MPI_Alltoallv (rank r receives chunk r of every rank's buffer), a
// combination of the chunks in rank order on the host, and MPI_Allgatherv of the results: the
// bandwidth of a ring all-reduce (2 (N-1)/N of the bytes per rank), with bits that do not
// depend on MPI's choice of algorithm. CUDA tensors are staged through page-locked host memory
// (see docs/distributed.md). Every MPI call is checked (MPI_ERRORS_RETURN on the group's own
// communicator) and a failure is an Error naming the call and MPI's message.
#pragma once

#include <memory>
#include <string>

#include "dist/process_group.h"

namespace gradaccum::dist {

struct MpiOptions {
  // A collective that has not returned after this long ends the rank (CollectiveWatchdog): a
  // peer died or left. <= 0: wait forever. Default 300 s, or GRADACCUM_DIST_TIMEOUT_S.
  MpiOptions& timeout_seconds(double s) {
    timeout_seconds_ = s;
    return *this;
  }
  double timeout_seconds() const { return timeout_seconds_; }

 private:
  double timeout_seconds_ = default_timeout_seconds();
  static double default_timeout_seconds();
};

// gradaccum was built with MPI (GRADACCUM_MPI found it).
bool mpi_built();
// This process was started by an MPI launcher (mpirun, mpiexec, srun): its environment says so.
// Read without touching MPI, so that a program run alone never initialises it.
bool launched_by_mpi();
// The rank and the number of processes the launcher's environment gives (0 and 1 without one).
int launcher_rank();
int launcher_size();

// Initialises MPI (MPI_THREAD_SERIALIZED) unless something else already did, and finalises it
// on destruction if it initialised it. Throws when gradaccum was built without MPI.
class MpiEnvironment {
 public:
  MpiEnvironment();
  ~MpiEnvironment();
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;
  // MPIX_Query_cuda_support: the MPI takes device pointers. gradaccum stages through host
  // memory either way (docs/distributed.md); reported for the record.
  static bool cuda_aware();
  static std::string library_version();  // the first line of MPI_Get_library_version

 private:
  bool initialised_here_ = false;
};

// A group of every process (over a duplicate of MPI_COMM_WORLD, so that its messages never mix
// with the application's). MPI must be initialised.
std::shared_ptr<ProcessGroup> mpi_world(const MpiOptions& options = {});

}  // namespace gradaccum::dist
