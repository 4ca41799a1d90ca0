// libFuzzer target for the IDX reader (plain and gzip): any bytes either parse into an array
// consistent with its header or throw gradaccum::Error. Anything else (a crash, a sanitizer
// report, another exception type escaping) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const gradaccum::data::IdxArray a = gradaccum::data::parse_idx(data, size, "fuzz-input.idx");
    // The elements are exactly what the dimensions say, and no more than the input could hold.
    const auto want =
        static_cast<std::uint64_t>(a.elements()) * gradaccum::data::idx_type_size(a.type);
    const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    if (a.dims.empty() || a.bytes.size() != want || (!gz && a.bytes.size() > size) ||
        (gz && a.bytes.size() > 1100 * static_cast<std::uint64_t>(size) + 64)) {
      std::fprintf(stderr, "parse_idx accepted an input inconsistently: %zu bytes\n",
                   a.bytes.size());
      std::abort();
    }
  } catch (const gradaccum::Error&) {
    // Rejected with a message: the expected outcome for malformed input.
  }
  return 0;
}
