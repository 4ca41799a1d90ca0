// Ends this process when a collective call does not return in time: the last line of defence
// against a hang (a rank that died, left the step early or disagrees on what to call), as
// NCCL's watchdog is for PyTorch. Ranks that fail cleanly abort the group at once instead
// (ProcessGroup::abort); this covers the rest.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace gradaccum::dist {

class CollectiveWatchdog {
 public:
  // timeout <= 0: no watchdog thread, nothing is ever ended.
  CollectiveWatchdog(int rank, double timeout_seconds);
  ~CollectiveWatchdog();  // never throws
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Arms the watchdog for one collective call named `what`; disarmed when the guard goes.
  class Guard {
   public:
    Guard(CollectiveWatchdog& w, const char* what);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    CollectiveWatchdog& w_;
  };

  double timeout_seconds() const { return timeout_s_; }

 private:
  void watch();

  int rank_;
  double timeout_s_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  const char* armed_ = nullptr;  // the collective in progress, or null
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

}  // namespace gradaccum::dist
