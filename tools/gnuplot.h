// The programs' plots go through gnuplot (gnuplot-nox): a script written to a temporary folder,
// run as a child process. Errors name the flag that asked for the plot.
#pragma once

#include <string>

namespace gradaccum::tools {

// Whether an executable `name` is on PATH (checked before a long run that ends in a plot).
bool on_path(const std::string& name);
// "<flag>: gnuplot was not found on PATH (...)".
std::string no_gnuplot_message(const std::string& flag);
// A new folder under /tmp for a plot's data and script; throws std::runtime_error.
std::string make_plot_dir(const std::string& program, const std::string& flag);
// Runs `gnuplot script`; a std::runtime_error naming `flag` when gnuplot is missing or fails.
void run_gnuplot(const std::string& script, const std::string& flag);

}  // namespace gradaccum::tools
