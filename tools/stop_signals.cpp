#include "stop_signals.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

#include "core/error.h"

namespace gradaccum::tools {
namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void record_signal(int signo) {
  // A second Ctrl-C: the person at the terminal does not want to wait for the step's end.
  if (signo == SIGINT && g_signal == SIGINT) _exit(128 + SIGINT);
  if (g_signal == 0) g_signal = signo;
}

}  // namespace

void catch_stop_signals() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = record_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: system calls go on as if nothing happened (the loop asks at the step's end).
  // A SIGTERM sent twice (to the process and to its group, as timeout(1) and some service
  // managers do) still stops at the step's end.
  sa.sa_flags = SA_RESTART;
  for (int signo : {SIGINT, SIGTERM}) {
    GA_CHECK(sigaction(signo, &sa, nullptr) == 0, "cannot install the handler of "
                                                      << signal_name(signo) << ": "
                                                      << std::strerror(errno));
  }
}

int stop_signal() {
  return static_cast<int>(g_signal);
}

const char* signal_name(int signo) {
  switch (signo) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "a signal";
  }
}

}  // namespace gradaccum::tools
