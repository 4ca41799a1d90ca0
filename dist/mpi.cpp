// dist/mpi.h over a real MPI (Open MPI from Debian, or any MPI 3).
#include "dist/mpi.h"

#include <mpi.h>
#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h>  // MPIX_Query_cuda_support
#endif

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dist/collective_watchdog.h"

namespace gradaccum::dist {
namespace {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "error " + std::to_string(code);
  return std::string(text, static_cast<std::size_t>(len));
}

}  // namespace
}  // namespace gradaccum::dist

// GA_MPI_CHECK(MPI_Bcast(...)): a failed MPI call becomes an Error naming it and MPI's message.
#define GA_MPI_CHECK(call)                                                               \
  do {                                                                                   \
    const int ga_mpi_rc_ = (call);                                                       \
    if (ga_mpi_rc_ != MPI_SUCCESS) {                                                     \
      ::gradaccum::detail::throw_error(                                                  \
          __FILE__, __LINE__, #call,                                                     \
          "expected MPI_SUCCESS, got " + ::gradaccum::dist::mpi_error_text(ga_mpi_rc_)); \
    }                                                                                    \
  } while (0)

namespace gradaccum::dist {
namespace {

bool mpi_initialised() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init != 0 && fin == 0;
}

int to_int_count(std::size_t n, const char* what) {
  GA_CHECK(n <= static_cast<std::size_t>(INT_MAX),
           what << ": " << n << " elements in one MPI call; expected at most " << INT_MAX);
  return static_cast<int>(n);
}

class MpiProcessGroup final : public ProcessGroup {
 public:
  MpiProcessGroup(MPI_Comm comm, int rank, int size, const MpiOptions& options)
      : ProcessGroup(rank, size), comm_(comm), watchdog_(rank, options.timeout_seconds()) {}

  ~MpiProcessGroup() override {
    if (mpi_initialised()) MPI_Comm_free(&comm_);
  }

  std::string backend() const override { return "mpi (" + MpiEnvironment::library_version() + ")"; }

  [[noreturn]] void abort(const std::string& message, int exit_code) noexcept override {
    std::fprintf(stderr, "rank %d: %s\n", rank(), message.c_str());
    std::fflush(stderr);
    MPI_Abort(comm_, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; should it, this rank still ends
  }

 private:
  void allreduce_impl(FusedBuffer& buffer) override {
    const int n = size(), me = rank();
    const std::size_t words = buffer.words();
    std::vector<int> counts(n), displs(n);
    for (int r = 0; r < n; ++r) {
      const std::size_t b = chunk_begin(words, n, r);
      counts[r] = to_int_count(chunk_begin(words, n, r + 1) - b, "allreduce");
      displs[r] = to_int_count(b, "allreduce");
    }
    // Chunk `me` of every other rank, in rank order (this rank's own stays in the buffer).
    const std::size_t mine = static_cast<std::size_t>(counts[me]);
    recv_.resize(mine * static_cast<std::size_t>(n));
    std::vector<int> scounts = counts, rcounts(n, counts[me]), rdispls(n);
    scounts[me] = 0;
    rcounts[me] = 0;
    for (int s = 0; s < n; ++s)
      rdispls[s] = to_int_count(mine * static_cast<std::size_t>(s), "allreduce");
    std::uint64_t* data = buffer.data();
    {
      CollectiveWatchdog::Guard g(watchdog_, "MPI_Alltoallv (the step's reduction)");
      GA_MPI_CHECK(MPI_Alltoallv(data, scounts.data(), displs.data(), MPI_UINT64_T, recv_.data(),
                                 rcounts.data(), rdispls.data(), MPI_UINT64_T, comm_));
    }
    // This rank's chunk, folded in rank order in place.
    const std::size_t begin = static_cast<std::size_t>(displs[me]);
    std::uint64_t* chunk = data + begin;
    std::vector<const std::uint64_t*> sources(n);
    for (int s = 0; s < n; ++s)
      sources[s] = s == me ? chunk : recv_.data() + mine * static_cast<std::size_t>(s);
    if (me >= 2) {  // the fold writes over the chunk before it reaches this rank's turn
      std::uint64_t* own = recv_.data() + mine * static_cast<std::size_t>(me);
      std::memcpy(own, chunk, mine * kWordBytes);
      sources[me] = own;
    }
    fold_words(buffer.segments(), chunk, sources.data(), n, begin, begin + mine);
    {
      CollectiveWatchdog::Guard g(watchdog_, "MPI_Allgatherv (the step's reduction)");
      GA_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(),
                                  displs.data(), MPI_UINT64_T, comm_));
    }
  }

  void broadcast_impl(void* data, std::size_t bytes, int root) override {
    CollectiveWatchdog::Guard g(watchdog_, "MPI_Bcast");
    auto* p = static_cast<char*>(data);
    for (std::size_t off = 0; off < bytes; off += INT_MAX) {
      const std::size_t len = std::min<std::size_t>(INT_MAX, bytes - off);
      GA_MPI_CHECK(MPI_Bcast(p + off, static_cast<int>(len), MPI_BYTE, root, comm_));
    }
  }

  void allgather_impl(const void* send, std::size_t bytes, void* recv) override {
    CollectiveWatchdog::Guard g(watchdog_, "MPI_Allgather");
    GA_MPI_CHECK(MPI_Allgather(send, to_int_count(bytes, "allgather"), MPI_BYTE, recv,
                               static_cast<int>(bytes), MPI_BYTE, comm_));
  }

  MPI_Comm comm_;
  CollectiveWatchdog watchdog_;
  std::vector<std::uint64_t> recv_;
};

}  // namespace

bool mpi_built() {
  return true;
}

MpiEnvironment::MpiEnvironment() {
  int init = 0;
  GA_MPI_CHECK(MPI_Initialized(&init));
  if (init != 0) return;
  int provided = 0;
  GA_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
  initialised_here_ = true;
}

MpiEnvironment::~MpiEnvironment() {
  if (initialised_here_ && mpi_initialised()) MPI_Finalize();
}

bool MpiEnvironment::cuda_aware() {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return false;
#endif
}

std::string MpiEnvironment::library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(text, &len) != MPI_SUCCESS) return "unknown";
  std::string v(text, static_cast<std::size_t>(len));
  const std::size_t cut = v.find_first_of(",\n");
  return cut == std::string::npos ? v : v.substr(0, cut);
}

std::shared_ptr<ProcessGroup> mpi_world(const MpiOptions& options) {
  GA_CHECK(mpi_initialised(), "mpi_world: MPI is not initialised (make a dist::MpiEnvironment)");
  MPI_Comm comm = MPI_COMM_NULL;
  GA_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  // Errors come back as codes (checked), not as MPI's default of ending the job unexplained.
  GA_MPI_CHECK(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  int rank = 0, size = 1;
  GA_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  GA_MPI_CHECK(MPI_Comm_size(comm, &size));
  return std::make_shared<MpiProcessGroup>(comm, rank, size, options);
}

}  // namespace gradaccum::dist
