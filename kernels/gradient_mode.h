// How a backward kernel writes a gradient buffer.
#pragma once

namespace gradaccum {

enum class GradientMode {
  Ignore,      // nobody needs this gradient: skip the work entirely
  Overwrite,   // buffer = gradient
  Accumulate,  // buffer += gradient (the existing contents are the starting accumulator)
};

}  // namespace gradaccum
