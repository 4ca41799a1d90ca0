// ASan preset check: a kernel that writes one element past its buffer must be reported.
// Argument: global (a cudaMalloc'd buffer), static_shared (a __shared__ array) or dynamic_shared.
#include <cstdio>
#include <cstring>

#include "core/launch.cuh"

namespace {

__global__ void overrun_global(float* data, int n) {
  const int i = static_cast<int>(threadIdx.x);
  data[i + (i == n - 1 ? 1 : 0)] = 1.0f;  // the last thread writes data[n]
}

__global__ void overrun_static_shared(float* out) {
  __shared__ float tile[64];
  const int i = static_cast<int>(threadIdx.x);
  float* volatile p = tile;  // opaque to UBSan's bounds and object-size checks: ASan reports it
  p[i + (i == 63 ? 1 : 0)] = static_cast<float>(i);
  __syncthreads();
  out[i] = tile[i];
}

__global__ void overrun_dynamic_shared(float* out, int n) {
  GA_DYNAMIC_SHARED(float, tile);
  const int i = static_cast<int>(threadIdx.x);
  tile[i + (i == n - 1 ? 1 : 0)] = static_cast<float>(i);
  __syncthreads();
  out[i] = tile[i];
}

}  // namespace

int main(int argc, char** argv) {
  const char* kind = argc > 1 ? argv[1] : "global";
  float* data = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&data), 64 * sizeof(float)) != cudaSuccess) return 2;
  if (std::strcmp(kind, "global") == 0) {
    GA_LAUNCH(overrun_global, dim3(1), dim3(64), 0, nullptr, data, 64);
  } else if (std::strcmp(kind, "static_shared") == 0) {
    GA_LAUNCH(overrun_static_shared, dim3(1), dim3(64), 0, nullptr, data);
  } else {
    GA_LAUNCH(overrun_dynamic_shared, dim3(1), dim3(64), 64 * sizeof(float), nullptr, data, 64);
  }
  (void)cudaFree(data);
  std::printf("no out-of-bounds access was reported\n");
  return 1;
}
