#include "dist/process_group.h"

#include <cstring>
#include <vector>

namespace gradaccum::dist {
namespace {

// One rank, or no words: the words already are the result.
class CompleteReduction final : public PendingReduction {
 public:
  bool test() override { return true; }
  void wait() override {}
};

}  // namespace

ProcessGroup::ProcessGroup(int rank, int size) : rank_(rank), size_(size) {
  GA_CHECK(size > 0 && rank >= 0 && rank < size,
           "ProcessGroup: rank " << rank << " of a group of " << size << " processes");
}

void ProcessGroup::allreduce(FusedBuffer& buffer) {
  GA_CHECK(buffer.allocated(), "ProcessGroup::allreduce: the buffer is not allocated");
  if (size_ == 1 || buffer.words() == 0) return;  // one rank: its words are the result
  allreduce_impl(buffer);
}

std::unique_ptr<PendingReduction> ProcessGroup::allreduce_start(FusedBuffer& buffer,
                                                                std::size_t begin,
                                                                std::size_t end) {
  GA_CHECK(buffer.allocated(), "ProcessGroup::allreduce_start: the buffer is not allocated");
  GA_CHECK(begin <= end && end <= buffer.words(), "ProcessGroup::allreduce_start: words ["
                                                      << begin << ", " << end << ") of a buffer of "
                                                      << buffer.words()
                                                      << " words; expected a range inside it");
  if (size_ == 1 || begin == end) return std::make_unique<CompleteReduction>();
  return allreduce_start_impl(buffer, begin, end);
}

void ProcessGroup::broadcast(void* data, std::size_t bytes, int root) {
  GA_CHECK(root >= 0 && root < size_,
           "ProcessGroup::broadcast: root " << root << " is not a rank of a group of " << size_);
  GA_CHECK(data != nullptr || bytes == 0,
           "ProcessGroup::broadcast: null data for " << bytes << " bytes");
  if (size_ == 1 || bytes == 0) return;
  broadcast_impl(data, bytes, root);
}

void ProcessGroup::allgather(const void* send, std::size_t bytes, void* recv) {
  GA_CHECK((send != nullptr && recv != nullptr) || bytes == 0,
           "ProcessGroup::allgather: null buffers for " << bytes << " bytes");
  if (bytes == 0) return;
  if (size_ == 1) {
    std::memcpy(recv, send, bytes);
    return;
  }
  allgather_impl(send, bytes, recv);
}

void ProcessGroup::barrier() {
  if (size_ == 1) return;
  const char mine = 0;
  std::vector<char> all(static_cast<std::size_t>(size_));
  allgather(&mine, 1, all.data());
}

}  // namespace gradaccum::dist
