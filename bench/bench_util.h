// Shared benchmark helpers: random inputs, device timing, FLOP and byte counters.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace gradaccum::bench {

// Several input sets, cycled through so that caches do not flatter the timings.
constexpr int kInputSets = 3;

Tensor random_input(const Shape& shape, std::uint64_t seed, DType dtype, Device device);

// Runs `body` once per benchmark iteration and sets its manual time (register benchmarks with
// UseManualTime): CUDA events on the device, the steady clock on the CPU. One warm-up call first.
// Returns the mean measured seconds per iteration (0 when none ran).
double run_timed(benchmark::State& state, Device device, const std::function<void(int)>& body);

// Sets FLOP/s and bytes/s counters (rates per second of measured time).
void set_rates(benchmark::State& state, double flops_per_iter, double bytes_per_iter);

// Skips the benchmark with the reason when `device` is CUDA and none is available.
bool skip_without_device(benchmark::State& state, Device device);

}  // namespace gradaccum::bench
