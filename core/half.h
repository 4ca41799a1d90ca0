// IEEE binary16 conversions on the host, rounding to nearest even, bit-identical to the
// device's __float2half_rn / __half2float. Half values are stored as their 16-bit patterns.
#pragma once

#include <cstdint>

namespace gradaccum {

std::uint16_t float_to_half_bits(float f);
float half_bits_to_float(std::uint16_t h);

// Rounds a float to the nearest half and back: the value an f16 tensor would hold.
inline float round_to_half(float f) {
  return half_bits_to_float(float_to_half_bits(f));
}

// Rounds a double directly to the nearest half (one rounding, as the device's fp16 arithmetic
// does after each exact operation); used to emulate fp16 arithmetic bit-exactly on the CPU.
std::uint16_t double_to_half_bits(double d);

}  // namespace gradaccum
