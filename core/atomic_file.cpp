#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace gradaccum {
namespace {

std::string reason(int err) {
  return std::strerror(err);
}

// Closes a descriptor on every path out (a failed close is reported by the caller's own close).
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string folder_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::string atomic_temporary_path(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = atomic_temporary_path(path);
  Fd f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f.fd < 0) GA_FAIL("cannot write '" << path << "': " << reason(errno));
  auto fail = [&](const char* what, int err) {
    ::close(f.fd);
    f.fd = -1;
    ::unlink(tmp.c_str());
    GA_FAIL("cannot write '" << path << "': " << what << ": " << reason(err));
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(f.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write", n < 0 ? errno : EIO);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(f.fd) != 0) fail("fsync", errno);
  const int fd = f.fd;
  f.fd = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    GA_FAIL("cannot write '" << path << "': close: " << reason(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    GA_FAIL("cannot write '" << path << "': rename: " << reason(err));
  }
  // The rename is durable once the folder's entry is on the disk.
  Fd dir;
  dir.fd = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir.fd < 0 || ::fsync(dir.fd) != 0) {
    GA_FAIL("cannot write '" << path << "': syncing its folder: " << reason(errno));
  }
}

}  // namespace gradaccum
