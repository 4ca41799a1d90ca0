#include "train_report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "gnuplot.h"

namespace gradaccum::tools {

StepCsv::StepCsv(const std::string& path, const std::string& flag, std::int64_t resumed_at)
    : path_(path), flag_(flag) {
  const std::string header = "step,epoch,loss,eval_loss,samples_per_s,loss_scale,skipped,dropped";
  std::vector<std::string> kept;
  if (resumed_at > 0) {
    std::ifstream old(path);
    std::string line;
    if (old && std::getline(old, line) && line == header) {
      while (std::getline(old, line)) {
        char* end = nullptr;
        const long long step = std::strtoll(line.c_str(), &end, 10);
        if (end != line.c_str() && *end == ',' && step <= resumed_at) kept.push_back(line);
      }
    }
  }
  out_.open(path, std::ios::trunc);
  if (!out_) throw std::runtime_error(flag + " " + path + ": cannot open for writing");
  out_ << header << '\n';
  for (const std::string& line : kept)
    out_ << line << '\n';
  if (!out_.flush()) throw std::runtime_error(flag + " " + path + ": write failed");
}

void StepCsv::add(const StepRecord& r) {
  char line[256];
  char eval[32] = "";
  if (r.evaluated) std::snprintf(eval, sizeof eval, "%.9g", r.eval_loss);
  std::snprintf(line, sizeof line, "%lld,%lld,%.9g,%s,%.6g,%.9g,%lld,%lld\n",
                static_cast<long long>(r.step), static_cast<long long>(r.epoch), r.loss, eval,
                r.samples_per_s, static_cast<double>(r.loss_scale),
                static_cast<long long>(r.skipped), static_cast<long long>(r.dropped));
  out_ << line;
  if (!out_.flush()) throw std::runtime_error(flag_ + " " + path_ + ": write failed");
}

void plot_losses(const std::string& csv, const std::string& png, const std::string& title) {
  const std::string dir = make_plot_dir("gradaccum-train", "--plot");
  const std::string script = dir + "/loss.gp";
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1000,560 font 'sans,10'\n"
       << "set output '" << png << "'\n"
       << "set datafile separator ','\n"
       << "set title '" << title << "' noenhanced\n"
       << "set xlabel 'optimizer step'\nset ylabel 'L1 loss'\nset logscale y\nset grid\n"
       << "set key top right\n"
       << "plot '" << csv << "' using 1:3 skip 1 with lines lw 1.5 title 'training (batch)', "
       << "'' using 1:($4 == $4 ? $4 : 1/0) skip 1 with linespoints pt 7 lw 2 title 'evaluation'\n";
    if (!gp.flush()) throw std::runtime_error("--plot: cannot write " + script);
  }
  run_gnuplot(script, "--plot");
}

void write_reconstructions(const std::string& png, const Tensor& images, const Tensor& recon) {
  const std::int64_t n = images.size(0), side = 28;
  const std::vector<float> a = images.to(DType::f32).to(Device::CPU).to_vector();
  const std::vector<float> b = recon.to(DType::f32).to(Device::CPU).to_vector();
  const std::string dir = make_plot_dir("gradaccum-train", "--reconstructions");
  const std::string data = dir + "/images.dat", script = dir + "/images.gp";
  {
    // One matrix, 2 x 28 rows by n x 28 columns (a 2-pixel gap between images), top row first.
    std::ofstream m(data);
    const std::int64_t gap = 2, w = n * (side + gap), h = 2 * side + gap;
    for (std::int64_t y = h - 1; y >= 0; --y) {  // gnuplot's matrix rows go upwards
      const bool top = y < side, bottom = y >= side + gap;
      for (std::int64_t x = 0; x < w; ++x) {
        const std::int64_t img = x / (side + gap), col = x % (side + gap);
        float v = 1.0f;  // the gaps are white
        if (col < side && (top || bottom)) {
          const std::int64_t row = top ? y : y - side - gap;
          const auto at = static_cast<std::size_t>(img * side * side + row * side + col);
          v = 1.0f - std::clamp(top ? a[at] : b[at], 0.0f, 1.0f);  // dark clothes on white
        }
        m << v << (x + 1 < w ? ' ' : '\n');
      }
    }
    if (!m.flush()) throw std::runtime_error("--reconstructions: cannot write " + data);
    std::ofstream gp(script);
    gp << "set terminal pngcairo size " << w * 4 << "," << h * 4 + 40 << " font 'sans,10'\n"
       << "set output '" << png << "'\n"
       << "set title 'Fashion-MNIST test images (top) and their reconstructions (bottom)'\n"
       << "unset xtics\nunset ytics\nunset colorbox\nunset key\nset border 0\n"
       << "set palette gray\nset cbrange [0:1]\nset size ratio -1\n"
       << "set xrange [-0.5:" << w - 0.5 << "]\nset yrange [-0.5:" << h - 0.5 << "]\n"
       << "plot '" << data << "' matrix with image pixels\n";
    if (!gp.flush()) throw std::runtime_error("--reconstructions: cannot write " + script);
  }
  run_gnuplot(script, "--reconstructions");
}

}  // namespace gradaccum::tools
