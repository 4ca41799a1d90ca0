#include "core/file_bytes.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace gradaccum {

std::string read_file_bytes(const std::string& path, std::uint64_t max_bytes,
                            const std::string& what) {
#define GA_FILE_FAIL(problem) GA_FAIL(what << " '" << path << "': " << problem)
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    GA_FILE_FAIL("cannot open: " << (ec ? ec.message() : "no such file"));
  }
  if (std::filesystem::is_directory(status)) GA_FILE_FAIL("cannot open: is a directory");
  if (!std::filesystem::is_regular_file(status)) GA_FILE_FAIL("not a regular file");
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) GA_FILE_FAIL("cannot determine the file size: " << ec.message());
  if (size > max_bytes) GA_FILE_FAIL(size << " bytes: expected at most " << max_bytes);
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) GA_FILE_FAIL("cannot open: " << std::strerror(errno));
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (static_cast<std::uintmax_t>(in.gcount()) != size) {
    GA_FILE_FAIL("read error: got " << in.gcount() << " of " << size
                                    << " bytes (the file changed while reading?)");
  }
  return bytes;
#undef GA_FILE_FAIL
}

}  // namespace gradaccum
