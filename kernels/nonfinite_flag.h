// A flag in device memory (host memory for CPU work) that kernels raise when they see a
// non-finite value. It is read once per optimizer step, never synchronised per launch, and can
// gate later kernels on the device (a dropped micro-batch adds nothing, with no host round trip).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/storage.h"

namespace gradaccum {

class NonFiniteFlag {
 public:
  explicit NonFiniteFlag(Device device);  // zeroed; throws if the device does not exist
  Device device() const { return storage_.device(); }
  // The flag word: 0 = all finite, non-zero = raised. Kernels set it, never clear it.
  std::uint32_t* word() { return static_cast<std::uint32_t*>(storage_.data()); }
  const std::uint32_t* word() const { return static_cast<const std::uint32_t*>(storage_.data()); }
  bool raised() const;    // reads the word (one device-to-host copy for CUDA: it synchronises)
  void clear();           // zeroes the word (a memset on the default stream for CUDA)
  void set(bool raised);  // writes the word from the host (a distributed step's global flag)

 private:
  Storage storage_;
};

}  // namespace gradaccum
