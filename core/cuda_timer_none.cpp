#include "core/cuda_timer.h"
#include "core/error.h"

namespace gradaccum {

struct CudaTimer::Events {};

CudaTimer::CudaTimer() {
  GA_FAIL("CudaTimer needs CUDA support; gradaccum was built without it");
}
CudaTimer::~CudaTimer() = default;
void CudaTimer::start() {}
double CudaTimer::stop_ms() {
  return 0.0;
}

}  // namespace gradaccum
