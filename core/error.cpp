#include "core/error.h"

namespace gradaccum {

std::string plain_message(const std::exception& e) {
  std::string m = e.what();
  const auto* ge = dynamic_cast<const Error*>(&e);
  if (ge == nullptr || ge->file() == nullptr) return m;
  const std::string where = std::string(ge->file()) + ":" + std::to_string(ge->line()) + ": ";
  if (m.compare(0, where.size(), where) != 0) return m;
  m.erase(0, where.size());
  const std::string check = "check `";
  if (m.compare(0, check.size(), check) == 0) {
    const std::size_t end = m.find("` failed: ");
    if (end != std::string::npos) m.erase(0, end + 10);
  }
  return m;
}

}  // namespace gradaccum

namespace gradaccum::detail {

std::string format_error(const char* file, int line, const char* what, const std::string& message) {
  std::ostringstream os;
  os << file << ":" << line << ": ";
  if (what != nullptr && what[0] != '\0') os << "check `" << what << "` failed: ";
  os << message;
  return os.str();
}

void throw_error(const char* file, int line, const char* what, const std::string& message) {
  throw Error(format_error(file, line, what, message), file, line);
}

}  // namespace gradaccum::detail
