#include "gnuplot.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

extern char** environ;

namespace gradaccum::tools {

bool on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  std::size_t begin = 0;
  while (begin <= dirs.size()) {
    const std::size_t end = std::min(dirs.find(':', begin), dirs.size());
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";
    if (access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    begin = end + 1;
  }
  return false;
}

std::string no_gnuplot_message(const std::string& flag) {
  return flag +
         ": gnuplot was not found on PATH (install it, e.g. apt-get install gnuplot-nox, or leave "
         "out " +
         flag + ")";
}

std::string make_plot_dir(const std::string& program, const std::string& flag) {
  std::string tmpl = "/tmp/" + program + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error(flag + ": cannot create a temporary folder: " + strerror(errno));
  }
  return buf.data();
}

void run_gnuplot(const std::string& script, const std::string& flag) {
  pid_t pid = 0;
  const char* args[] = {"gnuplot", script.c_str(), nullptr};
  const int rc =
      posix_spawnp(&pid, "gnuplot", nullptr, nullptr, const_cast<char* const*>(args), environ);
  if (rc == ENOENT) throw std::runtime_error(no_gnuplot_message(flag));
  if (rc != 0) throw std::runtime_error(flag + ": cannot run gnuplot: " + strerror(rc));
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) {
    throw std::runtime_error(flag + ": waiting for gnuplot: " + strerror(errno));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error(flag + ": gnuplot failed (script " + script + ")");
  }
}

}  // namespace gradaccum::tools
