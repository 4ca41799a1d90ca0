// Times device work with CUDA events on the default stream (for benchmarks).
#pragma once

#include <memory>

namespace gradaccum {

class CudaTimer {
 public:
  CudaTimer();   // throws when there is no CUDA device
  ~CudaTimer();  // never throws
  CudaTimer(const CudaTimer&) = delete;
  CudaTimer& operator=(const CudaTimer&) = delete;

  void start();
  double stop_ms();  // waits for the stop event; milliseconds since start()

 private:
  struct Events;
  std::unique_ptr<Events> events_;
};

}  // namespace gradaccum
