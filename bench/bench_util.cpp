#include "bench_util.h"

#include <chrono>

#include "core/cuda_device.h"
#include "core/cuda_timer.h"
#include "core/random.h"

namespace gradaccum::bench {

Tensor random_input(const Shape& shape, std::uint64_t seed, DType dtype, Device device) {
  return uniform(shape, -1.0f, 1.0f, seed, dtype, device);
}

bool skip_without_device(benchmark::State& state, Device device) {
  if (device == Device::CUDA && !cuda_available()) {
    state.SkipWithError("no CUDA device: GPU benchmark skipped");
    return true;
  }
  return false;
}

double run_timed(benchmark::State& state, Device device, const std::function<void(int)>& body) {
  double total = 0;
  body(0);  // warm-up: handles, first-touch, instruction caches
  if (device == Device::CUDA) {
    cuda_synchronize();
    CudaTimer timer;
    int i = 0;
    for (auto _ : state) {
      timer.start();
      body(i++ % kInputSets);
      const double t = timer.stop_ms() / 1e3;
      state.SetIterationTime(t);
      total += t;
    }
  } else {
    int i = 0;
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      body(i++ % kInputSets);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      state.SetIterationTime(t);
      total += t;
    }
  }
  return state.iterations() ? total / static_cast<double>(state.iterations()) : 0.0;
}

void set_rates(benchmark::State& state, double flops_per_iter, double bytes_per_iter) {
  const auto iters = static_cast<double>(state.iterations());
  if (flops_per_iter > 0) {
    state.counters["FLOP/s"] =
        benchmark::Counter(flops_per_iter * iters, benchmark::Counter::kIsRate);
  }
  if (bytes_per_iter > 0) {
    state.counters["bytes/s"] =
        benchmark::Counter(bytes_per_iter * iters, benchmark::Counter::kIsRate);
  }
}

}  // namespace gradaccum::bench
