#include "core/error.h"

namespace gradaccum::detail {

void throw_error(const char* file, int line, const char* what, const std::string& message) {
  std::ostringstream os;
  os << file << ":" << line << ": ";
  if (what != nullptr && what[0] != '\0') os << "check `" << what << "` failed: ";
  os << message;
  throw Error(os.str(), file, line);
}

}  // namespace gradaccum::detail
