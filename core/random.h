// Seeded random tensors. Values are drawn on the host from a counter-based generator (element i
// of seed s is a pure function of (s, i)), so every device gets the same values.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace gradaccum {

// A 64-bit counter-based generator: next() hashes (seed, counter) with splitmix64.
class CounterRng {
 public:
  explicit CounterRng(std::uint64_t seed, std::uint64_t counter = 0)
      : seed_(seed), counter_(counter) {}
  std::uint64_t next();
  float uniform();  // in [0, 1), 24 random bits
  float normal();   // standard normal (Box-Muller on two uniforms)

 private:
  std::uint64_t seed_;
  std::uint64_t counter_;
};

// Element i is low + (high - low) * CounterRng(seed, i).uniform(), in [low, high) for f32
// (rounding to f16 can reach high). Element i of normal() uses counters 2i and 2i + 1.
Tensor uniform(const Shape& shape, float low, float high, std::uint64_t seed,
               DType dtype = DType::f32, Device device = Device::CPU);
Tensor normal(const Shape& shape, float mean, float stddev, std::uint64_t seed,
              DType dtype = DType::f32, Device device = Device::CPU);

// PyTorch's default nn.Linear initialisation: kaiming_uniform_(a=sqrt(5)) for the weight
// [out, in], i.e. U(-1/sqrt(in), 1/sqrt(in)), and the same bound for the bias [out].
Tensor linear_weight_init(std::int64_t in, std::int64_t out, std::uint64_t seed,
                          DType dtype = DType::f32, Device device = Device::CPU);
Tensor linear_bias_init(std::int64_t in, std::int64_t out, std::uint64_t seed,
                        DType dtype = DType::f32, Device device = Device::CPU);

}  // namespace gradaccum
