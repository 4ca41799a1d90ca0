// A group of processes that reduce together: the one narrow interface between the accumulation
// window and a communication backend (MPI today: dist/mpi.h). The window never calls a backend
// directly, so another one (NCCL, for device buffers) slots in by implementing this class.
//
// Every call is collective: each rank of the group makes the same calls in the same order, with
// buffers of the same sizes. The public entry points validate, then call the backend's *_impl.
#pragma once

#include <cstddef>
#include <string>

#include "core/error.h"
#include "dist/fused_buffer.h"

namespace gradaccum::dist {

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
  virtual void broadcast_impl(void* data, std::size_t bytes, int root) = 0;
  virtual void allgather_impl(const void* send, std::size_t bytes, void* recv) = 0;

  int rank_;
  int size_;
};

}  // namespace gradaccum::dist
