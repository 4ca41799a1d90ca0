// TSan preset check: thread 0 reads what thread 1 wrote to shared memory. Without the barrier
// ("race") ThreadSanitizer must report a data race; with it ("synced") it must stay quiet.
#include <cstdio>
#include <cstring>

#include "core/launch.cuh"

namespace {

template <bool kSynced>
__global__ void neighbour_exchange(int* out) {
  __shared__ int slots[64];
  const int i = static_cast<int>(threadIdx.x);
  slots[i] = i * 3;
  if (kSynced) __syncthreads();
  out[i] = slots[(i + 1) % 64];
}

}  // namespace

int main(int argc, char** argv) {
  const bool synced = argc > 1 && std::strcmp(argv[1], "synced") == 0;
  int* out = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&out), 64 * sizeof(int)) != cudaSuccess) return 2;
  if (synced) {
    GA_LAUNCH(neighbour_exchange<true>, dim3(2), dim3(64), 0, nullptr, out);
  } else {
    GA_LAUNCH(neighbour_exchange<false>, dim3(2), dim3(64), 0, nullptr, out);
  }
  int host[64];
  (void)cudaMemcpy(host, out, sizeof host, cudaMemcpyDeviceToHost);
  (void)cudaFree(out);
  std::printf("out[0] = %d\n", host[0]);
  return 0;
}
