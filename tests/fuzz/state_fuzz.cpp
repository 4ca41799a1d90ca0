// libFuzzer target for state files (checkpoints): any bytes either parse into a state that
// serialises back to bytes that parse to the same state, or throw gradaccum::Error. Anything else
// (a crash, a sanitizer report, another exception type escaping) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const gradaccum::StateDict s = gradaccum::StateDict::parse(bytes, "fuzz-input.state");
    const std::string again = s.serialize();
    if (gradaccum::StateDict::parse(again, "reserialised").serialize() != again) {
      std::fprintf(stderr, "a parsed state does not survive serialising\n");
      std::abort();
    }
  } catch (const gradaccum::Error&) {
    // Rejected with a message: the expected outcome for malformed input.
  }
  return 0;
}
