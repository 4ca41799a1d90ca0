#include "core/cuda_check.cuh"
#include "core/cuda_timer.h"

namespace gradaccum {

struct CudaTimer::Events {
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
};

CudaTimer::CudaTimer() : events_(std::make_unique<Events>()) {
  GA_CUDA_CHECK(cudaEventCreate(&events_->start));
  const cudaError_t err = cudaEventCreate(&events_->stop);
  if (err != cudaSuccess) {
    cudaEventDestroy(events_->start);  // nothing leaks on the error path
    GA_CUDA_CHECK(err);
  }
}

CudaTimer::~CudaTimer() {
  if (!events_) return;
  if (events_->start) cudaEventDestroy(events_->start);
  if (events_->stop) cudaEventDestroy(events_->stop);
}

void CudaTimer::start() {
  GA_CUDA_CHECK(cudaEventRecord(events_->start, 0));
}

double CudaTimer::stop_ms() {
  GA_CUDA_CHECK(cudaEventRecord(events_->stop, 0));
  GA_CUDA_CHECK(cudaEventSynchronize(events_->stop));
  float ms = 0.0f;
  GA_CUDA_CHECK(cudaEventElapsedTime(&ms, events_->start, events_->stop));
  return ms;
}

}  // namespace gradaccum
