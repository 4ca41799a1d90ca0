#include "dist/collective_watchdog.h"

#include <cstdio>
#include <cstdlib>

namespace gradaccum::dist {

// The exit status of a rank ended by its watchdog.
constexpr int kWatchdogExitCode = 3;

CollectiveWatchdog::CollectiveWatchdog(int rank, double timeout_seconds)
    : rank_(rank), timeout_s_(timeout_seconds) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { watch(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

CollectiveWatchdog::Guard::Guard(CollectiveWatchdog& w, const char* what) : w_(w) {
  if (!w_.thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(w_.mutex_);
    w_.armed_ = what;
    w_.deadline_ = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(w_.timeout_s_));
  }
  w_.cv_.notify_all();
}

CollectiveWatchdog::Guard::~Guard() {
  if (!w_.thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(w_.mutex_);
    w_.armed_ = nullptr;
  }
  w_.cv_.notify_all();
}

void CollectiveWatchdog::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    if (armed_ == nullptr) {
      cv_.wait(lock);
      continue;
    }
    const auto deadline = deadline_;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && armed_ != nullptr &&
        deadline_ == deadline && !stop_) {
      std::fprintf(stderr,
                   "gradaccum: rank %d: %s did not complete within %g s: another rank failed, "
                   "stopped early or made a different call; ending this rank\n",
                   rank_, armed_, timeout_s_);
      std::fflush(stderr);
      std::_Exit(kWatchdogExitCode);
    }
  }
}

}  // namespace gradaccum::dist
