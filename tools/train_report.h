// What gradaccum-train writes besides its lines: the per-step CSV (--log-csv), the loss curves
// drawn from it (--plot, gnuplot) and, for Fashion-MNIST, test images above their
// reconstructions (--reconstructions, gnuplot). The CSV is streamed, so nothing grows in memory
// with the number of steps.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include "core/tensor.h"

namespace gradaccum::tools {

struct StepRecord {
  std::int64_t step = 0, epoch = 0;
  double loss = 0;
  double eval_loss = 0;
  bool evaluated = false;
  double samples_per_s = 0;
  float loss_scale = 1;
  std::int64_t skipped = 0, dropped = 0;  // so far
};

class StepCsv {
 public:
  // Creates (truncates) `path` and writes the header; throws naming the flag. A resumed run
  // (resumed_at > 0) keeps an existing file's lines up to that step and appends after them, so
  // that the file holds each step once.
  StepCsv(const std::string& path, const std::string& flag, std::int64_t resumed_at = 0);
  // Appends one step (flushed, so that an interrupted run keeps every step written).
  void add(const StepRecord& r);
  const std::string& path() const { return path_; }

 private:
  std::string path_, flag_;
  std::ofstream out_;
};

// Training loss per step and evaluation loss where there is one, from a StepCsv file.
void plot_losses(const std::string& csv, const std::string& png, const std::string& title);
// Images [n, 784] (pixels in [0, 1]) in a row above their reconstructions.
void write_reconstructions(const std::string& png, const Tensor& images, const Tensor& recon);

}  // namespace gradaccum::tools
