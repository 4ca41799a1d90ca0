// A group of processes that reduce together: the one narrow interface between the accumulation
// window and a communication backend (MPI today: dist/mpi.h). The window never calls a backend
// directly, so another one (NCCL, for device buffers) slots in by implementing this class.
//
// Every call is collective: each rank of the group makes the same calls in the same order, with
// buffers of the same sizes. The public entry points validate, then call the backend's *_impl.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/error.h"
#include "dist/fused_buffer.h"

namespace gradaccum::dist {

// A reduction in flight (ProcessGroup::allreduce_start): its words must be neither read nor
// written until it is complete. Destroying an incomplete one waits for it, since a collective
// cannot be cancelled (and its failure then goes unreported: call wait() to see it).
class PendingReduction {
 public:
  virtual ~PendingReduction() = default;
  // Moves it on without blocking (the backend lets MPI progress and folds what has arrived);
  // true once it is complete.
  virtual bool test() = 0;
  // Blocks until it is complete.
  virtual void wait() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  virtual std::string backend() const = 0;  // "mpi (Open MPI 4.1.4)", say

  // Combines every word of `buffer` across the ranks, in place (see FusedBuffer): afterwards all
  // ranks hold the same bits, and those bits do not depend on the backend's algorithm or on
  // timing, because each word is combined in rank order: ((w0 op w1) op w2) ... op w(N-1).
  void allreduce(FusedBuffer& buffer);
  // The same for the words [begin, end) alone, started now and completed later (test(), wait()),
  // so that it overlaps what the caller does meanwhile: a data-parallel window reduces each
  // bucket of gradients while the backward computes the next. Ranks start their reductions in
  // the same order with the same ranges. The result has the same bits as allreduce's.
  std::unique_ptr<PendingReduction> allreduce_start(FusedBuffer& buffer, std::size_t begin,
                                                    std::size_t end);
  // Copies `bytes` from rank `root`'s `data` to every rank's.
  void broadcast(void* data, std::size_t bytes, int root);
  // recv (size() * bytes) gets rank r's `send` at offset r * bytes, on every rank.
  void allgather(const void* send, std::size_t bytes, void* recv);
  // Returns once every rank has called it (an allgather of one byte). Before ranks that stop
  // together exit, so that what one of them printed is out before any exit ends the job.
  void barrier();

  // Writes "rank R: message" as one line on stderr and ends every process of the group with
  // `exit_code`, at once (a rank that cannot go on must not leave the others waiting).
  [[noreturn]] virtual void abort(const std::string& message, int exit_code) noexcept = 0;

 protected:
  ProcessGroup(int rank, int size);

 private:
  virtual void allreduce_impl(FusedBuffer& buffer) = 0;
  virtual std::unique_ptr<PendingReduction> allreduce_start_impl(FusedBuffer& buffer,
                                                                 std::size_t begin,
                                                                 std::size_t end) = 0;
  virtual void broadcast_impl(void* data, std::size_t bytes, int root) = 0;
  virtual void allgather_impl(const void* send, std::size_t bytes, void* recv) = 0;

  int rank_;
  int size_;
};

}  // namespace gradaccum::dist
