// main() of gradaccum_mpi_tests, run as `mpiexec -np N gradaccum_mpi_tests`: rank 0 prints
// GoogleTest's usual report, the other ranks only their failures (prefixed with the rank), and
// every rank exits with the verdict of all of them.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "dist/mpi.h"
#include "mpi_world.h"

namespace gradaccum::test {
namespace {

std::shared_ptr<dist::ProcessGroup> g_world;

// Failures of a rank other than 0, one line each with the rank.
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "rank %d: %s:%d: failure\n%s\n", rank_,
                 r.file_name() ? r.file_name() : "?", r.line_number(), r.summary());
  }

 private:
  int rank_;
};

}  // namespace

dist::ProcessGroup& world() {
  return *g_world;
}
std::shared_ptr<dist::ProcessGroup> world_ptr() {
  return g_world;
}

}  // namespace gradaccum::test

int main(int argc, char** argv) {
  using namespace gradaccum;
  dist::MpiEnvironment mpi;
  testing::InitGoogleTest(&argc, argv);
  // A test that hangs on a collective is a failure within two minutes, not a stuck CI.
  test::g_world = dist::mpi_world(dist::MpiOptions().timeout_seconds(120));
  const int rank = test::g_world->rank();
  if (rank != 0) {
    testing::TestEventListeners& l = testing::UnitTest::GetInstance()->listeners();
    delete l.Release(l.default_result_printer());
    l.Append(new test::RankFailurePrinter(rank));
  }
  const int rc = RUN_ALL_TESTS();
  std::vector<int> all(static_cast<std::size_t>(test::g_world->size()));
  test::g_world->allgather(&rc, sizeof rc, all.data());
  int verdict = 0;
  for (std::size_t r = 0; r < all.size(); ++r) {
    if (all[r] != 0) {
      if (rank == 0) std::fprintf(stderr, "rank %zu: tests failed\n", r);
      verdict = 1;
    }
  }
  test::g_world.reset();
  return verdict;
}
