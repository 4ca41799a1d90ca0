// What a fault does to a distributed run, as a program for tests/mpi/faults.sh:
//   fault_program throw     rank 1 throws in the middle of step 2's window: it aborts the group,
//                           every rank ends non-zero at once, the error names rank 1 and why
//   fault_program stall     rank 1 stops answering before step 2's reduction (a stuck data loader,
//                           a dead device): the others' watchdogs end them after the timeout
//                           (GRADACCUM_DIST_TIMEOUT_S), and the launcher ends rank 1
//   fault_program mismatch  rank 1 builds a different model: every rank reports the same
//                           GroupError at the window's construction, rank 0 prints it, all exit 1
//   fault_program ok        three clean steps; rank 0 prints "ok"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "autograd/nn.h"
#include "core/random.h"
#include "dist/group_error.h"
#include "dist/mpi.h"
#include "optim/optim.h"

namespace ga = gradaccum;

namespace {

int train(const std::string& mode, const std::shared_ptr<ga::dist::ProcessGroup>& pg) {
  const int rank = pg->rank();
  const std::int64_t hidden = mode == "mismatch" && rank == 1 ? 9 : 8;
  ga::nn::Sequential model({{"fc1", ga::nn::Linear(ga::nn::LinearOptions(4, hidden).seed(1))},
                            {"relu", ga::nn::ReLU()},
                            {"fc2", ga::nn::Linear(ga::nn::LinearOptions(hidden, 2).seed(2))}});
  ga::optim::AccumulationWindow window(model.parameters(),
                                       ga::optim::WindowOptions().process_group(pg));
  ga::optim::SGD opt(model.parameters(), ga::optim::SGDOptions(0.1));
  ga::nn::L1Loss loss_fn(ga::Reduction::Mean);
  for (int step = 0; step < 3; ++step) {
    window.zero_grad();
    for (int m = 0; m < 2; ++m) {
      if (step == 2 && m == 1 && rank == 1) {
        if (mode == "throw") throw std::runtime_error("planted fault in micro-batch 1 of step 2");
        if (mode == "stall") {
          // Long past the others' timeout; it never reaches MPI again (a rank stuck in
          // MPI_Finalize while the launcher tears the job down could hang the launcher).
          std::this_thread::sleep_for(std::chrono::seconds(30));
          std::_Exit(0);
        }
      }
      const std::uint64_t seed = static_cast<std::uint64_t>(100 * step + 10 * m + rank);
      ga::autograd::Variable x(ga::uniform({3, 4}, -1.0f, 1.0f, seed));
      ga::autograd::Variable y(ga::uniform({3, 2}, -1.0f, 1.0f, seed + 7));
      window.backward(loss_fn(model(x), y));
    }
    opt.step(window);
  }
  if (rank == 0) std::printf("ok\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "throw" && mode != "stall" && mode != "mismatch" && mode != "ok") {
    std::fprintf(stderr, "usage: fault_program throw|stall|mismatch|ok\n");
    return 2;
  }
  ga::dist::MpiEnvironment mpi;
  std::shared_ptr<ga::dist::ProcessGroup> pg = ga::dist::mpi_world();
  try {
    return train(mode, pg);
  } catch (const ga::dist::GroupError& e) {
    // Every rank is here: rank 0 reports, and all wait for it before exiting (an exit could end
    // the job before the report is out).
    if (pg->rank() == 0) {
      std::fprintf(stderr, "fault_program: error: %s\n", e.what());
      std::fflush(stderr);
    }
    pg->barrier();
    return 1;
  } catch (const std::exception& e) {
    pg->abort(std::string("fault_program: error: ") + e.what(), 1);
  }
}
