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

// How words [begin, end) of a buffer are reduced: cut into one contiguous chunk per rank; every
// rank sends chunk r to rank r (MPI_Alltoallv, its own chunk staying in place), folds its own
// chunk in rank order, and every rank gathers every folded chunk back (MPI_Allgatherv in place).
// MPI only moves bytes, so the bits do not depend on its algorithm.
struct ChunkPlan {
  ChunkPlan(std::size_t first_word, std::size_t end, int n, int rank)
      : begin(first_word), me(rank) {
    counts.resize(n);
    displs.resize(n);
    for (int r = 0; r < n; ++r) {
      const std::size_t b = chunk_begin(end - begin, n, r);
      counts[r] = to_int_count(chunk_begin(end - begin, n, r + 1) - b, "allreduce");
      displs[r] = to_int_count(b, "allreduce");
    }
    mine = static_cast<std::size_t>(counts[me]);
    scounts = counts;
    scounts[me] = 0;
    rcounts.assign(n, counts[me]);
    rcounts[me] = 0;
    rdispls.resize(n);
    for (int s = 0; s < n; ++s)
      rdispls[s] = to_int_count(mine * static_cast<std::size_t>(s), "allreduce");
    recv.resize(mine * static_cast<std::size_t>(n));
  }

  // This rank's chunk, folded in rank order in place, once the others' copies are in recv.
  void fold(FusedBuffer& buffer) {
    if (mine == 0) return;  // a range of fewer words than ranks: this rank's chunk is empty
    const int n = static_cast<int>(counts.size());
    const std::size_t first = begin + static_cast<std::size_t>(displs[me]);
    std::uint64_t* chunk = buffer.data() + first;
    std::vector<const std::uint64_t*> sources(n);
    for (int s = 0; s < n; ++s)
      sources[s] = s == me ? chunk : recv.data() + mine * static_cast<std::size_t>(s);
    if (me >= 2) {  // the fold writes over the chunk before it reaches this rank's turn
      std::uint64_t* own = recv.data() + mine * static_cast<std::size_t>(me);
      std::memcpy(own, chunk, mine * kWordBytes);
      sources[me] = own;
    }
    fold_words(buffer.segments(), chunk, sources.data(), n, first, first + mine);
  }

  std::size_t begin;
  int me;
  std::size_t mine = 0;
  std::vector<int> counts, displs, scounts, rcounts, rdispls;
  std::vector<std::uint64_t> recv;  // chunk `me` of every rank, in rank order
};

// allreduce_start's MPI reduction: the same exchange, fold and gather as allreduce, with
// point-to-point messages under tags of its own. Each rank moves on to the gather when its own
// exchange is complete, at a different time on each rank; nonblocking collectives would then be
// started in different orders on different ranks, which MPI forbids, while tagged messages
// match whatever the order.
class MpiPendingReduction final : public PendingReduction {
 public:
  MpiPendingReduction(FusedBuffer& buffer, std::size_t begin, std::size_t end, int n, int me,
                      int tag, MPI_Comm comm, CollectiveWatchdog& watchdog)
      : buffer_(buffer), plan_(begin, end, n, me), tag_(tag), comm_(comm), watchdog_(watchdog) {
    std::uint64_t* data = buffer_.data() + plan_.begin;
    for (int r = 0; r < n; ++r) {
      if (r == me) continue;
      post_recv(plan_.recv.data() + plan_.rdispls[r], plan_.rcounts[r], r, tag_);
      post_send(data + plan_.displs[r], plan_.counts[r], r, tag_);
    }
  }
  ~MpiPendingReduction() override {
    if (stage_ == Stage::Done) return;
    try {
      wait();
    } catch (...) {  // never thrown from a destructor; MPI has already reported it as a code
    }
  }

  bool test() override {
    while (stage_ != Stage::Done) {
      int done = 0;
      GA_MPI_CHECK(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done,
                               MPI_STATUSES_IGNORE));
      if (done == 0) return false;
      advance();
    }
    return true;
  }

  void wait() override {
    while (stage_ != Stage::Done) {
      {
        CollectiveWatchdog::Guard g(watchdog_, stage_ == Stage::Exchanging
                                                   ? "the exchange of a bucket of the step's "
                                                     "reduction"
                                                   : "the gather of a bucket of the step's "
                                                     "reduction");
        GA_MPI_CHECK(
            MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
      }
      advance();
    }
  }

 private:
  enum class Stage { Exchanging, Gathering, Done };
  void post_recv(std::uint64_t* dst, int count, int from, int tag) {
    requests_.push_back(MPI_REQUEST_NULL);
    GA_MPI_CHECK(MPI_Irecv(dst, count, MPI_UINT64_T, from, tag, comm_, &requests_.back()));
  }
  void post_send(const std::uint64_t* src, int count, int to, int tag) {
    requests_.push_back(MPI_REQUEST_NULL);
    GA_MPI_CHECK(MPI_Isend(src, count, MPI_UINT64_T, to, tag, comm_, &requests_.back()));
  }
  // Every message of the current stage has completed: on to the next.
  void advance() {
    requests_.clear();
    if (stage_ == Stage::Gathering) {
      stage_ = Stage::Done;
      return;
    }
    plan_.fold(buffer_);
    std::uint64_t* data = buffer_.data() + plan_.begin;
    const int n = static_cast<int>(plan_.counts.size()), me = plan_.me;
    for (int r = 0; r < n; ++r) {
      if (r == me) continue;
      post_recv(data + plan_.displs[r], plan_.counts[r], r, tag_ + 1);
      post_send(data + plan_.displs[me], plan_.counts[me], r, tag_ + 1);
    }
    stage_ = Stage::Gathering;
  }

  FusedBuffer& buffer_;
  ChunkPlan plan_;
  int tag_;  // the exchange's; the gather's is tag_ + 1
  MPI_Comm comm_;
  CollectiveWatchdog& watchdog_;
  std::vector<MPI_Request> requests_;
  Stage stage_ = Stage::Exchanging;
};

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
    ChunkPlan plan(0, buffer.words(), size(), rank());
    std::uint64_t* data = buffer.data();
    {
      CollectiveWatchdog::Guard g(watchdog_, "MPI_Alltoallv (the step's reduction)");
      GA_MPI_CHECK(MPI_Alltoallv(data, plan.scounts.data(), plan.displs.data(), MPI_UINT64_T,
                                 plan.recv.data(), plan.rcounts.data(), plan.rdispls.data(),
                                 MPI_UINT64_T, comm_));
    }
    plan.fold(buffer);
    {
      CollectiveWatchdog::Guard g(watchdog_, "MPI_Allgatherv (the step's reduction)");
      GA_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, plan.counts.data(),
                                  plan.displs.data(), MPI_UINT64_T, comm_));
    }
  }

  std::unique_ptr<PendingReduction> allreduce_start_impl(FusedBuffer& buffer, std::size_t begin,
                                                         std::size_t end) override {
    // Every rank starts its reductions in the same order, so the tags agree; they only have to
    // be distinct among the reductions in flight at once.
    const int tag = 2 * (next_reduction_++ % kReductionTags);
    return std::make_unique<MpiPendingReduction>(buffer, begin, end, size(), rank(), tag, comm_,
                                                 watchdog_);
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

  // MPI guarantees tags up to 32767: pairs of them.
  static constexpr int kReductionTags = 16383;
  MPI_Comm comm_;
  CollectiveWatchdog watchdog_;
  int next_reduction_ = 0;
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
