// SIGINT and SIGTERM as a request to stop at the next step boundary: the handler only records
// the signal, and the training loop asks after each optimizer step, so that a run never stops
// inside a window. A second SIGINT (Ctrl-C twice) ends the process at once, which an atomic
// checkpoint survives; further SIGTERMs change nothing.
#pragma once

namespace gradaccum::tools {

// Installs the handlers (for the life of the process).
void catch_stop_signals();
// The signal received so far (SIGINT or SIGTERM), or 0.
int stop_signal();
// "SIGINT", "SIGTERM".
const char* signal_name(int signo);

}  // namespace gradaccum::tools
