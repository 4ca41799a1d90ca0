// libFuzzer target for the .npy parser: any bytes either parse into a tensor consistent with
// the input or throw gradaccum::Error. Anything else (a crash, a sanitizer report, another
// exception type escaping) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const gradaccum::Tensor t = gradaccum::parse_npy(data, size, "fuzz-input.npy");
    // The array is the end of the input, exactly: nothing past it, nothing made up.
    const std::size_t item = gradaccum::dtype_size(t.dtype());
    if (t.nbytes() > size || t.nbytes() != static_cast<std::size_t>(t.numel()) * item ||
        (t.nbytes() != 0 && std::memcmp(t.raw_data(), data + size - t.nbytes(), t.nbytes()) != 0)) {
      std::fprintf(stderr, "parse_npy accepted an input inconsistently: %s\n", t.str().c_str());
      std::abort();
    }
  } catch (const gradaccum::Error&) {
    // Rejected with a message: the expected outcome for malformed input.
  }
  return 0;
}
