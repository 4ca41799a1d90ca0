#include "core/stream.h"

namespace gradaccum {
namespace {
thread_local Stream t_current = nullptr;
}

Stream current_stream() noexcept {
  return t_current;
}

StreamGuard::StreamGuard(Stream stream) noexcept : previous_(t_current) {
  t_current = stream;
}

StreamGuard::~StreamGuard() {
  t_current = previous_;
}

}  // namespace gradaccum
