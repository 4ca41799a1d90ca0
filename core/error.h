// Errors: every failed check becomes an exception that names where it happened, what was
// checked, and what was expected against what was got. Destructors never throw.
#pragma once

#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>

namespace gradaccum {

// Base class of every error gradaccum throws.
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, const char* file, int line)
      : std::runtime_error(message), file_(file), line_(line) {}
  const char* file() const noexcept { return file_; }
  int line() const noexcept { return line_; }

 private:
  const char* file_;
  int line_;
};

// An allocation on a device failed; `bytes()` is the size that was asked for.
class OutOfMemoryError : public Error {
 public:
  OutOfMemoryError(const std::string& message, std::size_t bytes, const char* file, int line)
      : Error(message, file, line), bytes_(bytes) {}
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  std::size_t bytes_;
};

// The message of an exception for a person: a gradaccum::Error's without the source location and
// the check expression ("file:line: check `cond` failed: "), any other's as it is.
std::string plain_message(const std::exception& e);

namespace detail {
// "file:line: check `what` failed: message" (the check part only when `what` is not empty).
std::string format_error(const char* file, int line, const char* what, const std::string& message);
// Formats as above and throws Error.
[[noreturn]] void throw_error(const char* file, int line, const char* what,
                              const std::string& message);
}  // namespace detail

}  // namespace gradaccum

// GA_CHECK(cond, "expected " << a << ", got " << b): throws gradaccum::Error when cond is false.
#define GA_CHECK(cond, msg)                                                            \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::ostringstream ga_check_os_;                                                 \
      ga_check_os_ << msg;                                                             \
      ::gradaccum::detail::throw_error(__FILE__, __LINE__, #cond, ga_check_os_.str()); \
    }                                                                                  \
  } while (0)

// GA_FAIL("message"): unconditional error.
#define GA_FAIL(msg)                                                              \
  do {                                                                            \
    std::ostringstream ga_check_os_;                                              \
    ga_check_os_ << msg;                                                          \
    ::gradaccum::detail::throw_error(__FILE__, __LINE__, "", ga_check_os_.str()); \
  } while (0)
