// gradaccum-stability: how far can gradients be accumulated, numerically? Sweeps the number of
// accumulated micro-batches k = 1, 2, 4, ... for every accumulation mode and gradient source
// (study/accumulation_study.h), prints the relative error of the normalised gradient against a
// float64 reference, and writes CSV and a log-log plot (gnuplot) on request.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "core/cuda_device.h"
#include "flags.h"
#include "gnuplot.h"
#include "study/accumulation_study.h"

namespace ga = gradaccum;
namespace study = gradaccum::study;
using ga::tools::FlagError;
using ga::tools::Flags;

namespace {

const char* kUsage = R"(usage: gradaccum-stability [flags]

Accumulates k = 1, 2, 4, ... micro-batch gradients in every accumulation mode (fp32 naive,
Kahan and exact; fp16 gradients into an fp16 accumulator, into fp32, into fp32 with Kahan, with a
static and with a dynamic loss scale) through the library's accumulate kernels, and compares the
normalised sum with a float64 reference over the same addends. Gradient sources: a small MLP's
per-micro-batch gradients (realistic) and adversarial ones (random signs, a constant, small
values onto a large one, values near fp16's smallest normal and largest finite number).
Prints the relative error per source, mode and k, then a summary at the largest k.

  --device auto|cpu|cuda   where the accumulation kernels run (auto: cuda when present)  [auto]
  --max-accum K            largest k of the sweep (powers of two up to K, and K)        [65536]
  --extra-accum N          plus one accumulation of N additions per mode on the MLP's
                           gradients (cycling through its pool); 0: none              [1000000]
  --csv FILE               write every cell: source,dtype,mode,accum,rel_error,...
  --png FILE               plot error versus k (log-log, one panel per source) with gnuplot
  --seed N                 data, initialisation and synthetic values                       [0]
  --help
)";

struct Config {
  ga::Device device = ga::Device::CPU;
  std::int64_t max_accum = 65536;
  std::int64_t extra_accum = 1000000;
  std::string csv, png;
  std::uint64_t seed = 0;
};

Config parse(int argc, char** argv) {
  const Flags f(argc, argv, {"device", "max-accum", "extra-accum", "csv", "png", "seed"}, {"help"});
  if (f.on("help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  Config c;
  c.device = ga::tools::device_flag(f);
  c.max_accum = f.integer("max-accum", c.max_accum, 1, std::int64_t{1} << 26);
  c.extra_accum = f.integer("extra-accum", c.extra_accum, 0, std::int64_t{1} << 30);
  c.csv = f.str("csv", "");
  c.png = f.str("png", "");
  c.seed = static_cast<std::uint64_t>(f.integer("seed", 0, 0, INT64_MAX));
  return c;
}

std::string fmt(double v) {
  if (std::isnan(v)) return "all dropped";
  if (std::isinf(v)) return "non-finite";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

// A progress line on stderr when it is a terminal.
class Progress {
 public:
  Progress() : tty_(isatty(STDERR_FILENO) != 0) {}
  void show(const std::string& what, std::int64_t done, std::int64_t total) const {
    if (!tty_) return;
    std::fprintf(stderr, "\r\033[K[%s] %lld/%lld", what.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total));
    std::fflush(stderr);
  }
  void clear() const {
    if (tty_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  bool tty_;
};

struct Series {
  study::GradientSource source;
  study::AccumMode mode;
  std::vector<study::CellResult> cells;
};

void write_csv(const std::string& path, const std::vector<study::CellResult>& cells,
               ga::Device device) {
  std::ofstream out(path);
  if (!out) throw FlagError("--csv " + path + ": cannot open for writing");
  out << "source,dtype,mode,accum,rel_error,max_abs_error,max_rel_error,underflow_frac,"
         "overflow_frac,dropped,loss_scale,device\n";
  char line[512];
  for (const study::CellResult& c : cells) {
    std::snprintf(line, sizeof line, "%s,%s,%s,%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%lld,%.9g,%s\n",
                  study::gradient_source_name(c.source),
                  ga::dtype_name(study::accum_mode_grad_dtype(c.mode)),
                  study::accum_mode_name(c.mode), static_cast<long long>(c.accum), c.rel_error,
                  c.max_abs_error, c.max_rel_error, c.underflow_frac, c.overflow_frac,
                  static_cast<long long>(c.dropped), static_cast<double>(c.loss_scale),
                  ga::device_name(device));
    out << line;
  }
  if (!out.flush()) throw FlagError("--csv " + path + ": write failed");
}

void write_png(const std::string& png, const std::vector<Series>& series,
               const std::vector<std::int64_t>& counts, ga::Device device) {
  const std::string dir = ga::tools::make_plot_dir("gradaccum-stability", "--png");
  std::vector<std::string> files;
  const auto& sources = study::all_gradient_sources();
  const auto& modes = study::all_accum_modes();
  for (study::GradientSource s : sources) {
    const std::string path = dir + "/" + study::gradient_source_name(s) + ".dat";
    std::ofstream out(path);
    out << "k";
    for (study::AccumMode m : modes)
      out << ' ' << study::accum_mode_name(m);
    out << '\n';
    for (std::size_t i = 0; i < counts.size(); ++i) {
      out << counts[i];
      for (const Series& ser : series) {
        if (ser.source != s) continue;
        // Log axes: exact results at the floor, non-finite ones at the ceiling.
        const double e = ser.cells[i].rel_error;
        if (std::isnan(e)) {
          out << " NaN";  // nothing counted: no point
        } else {
          out << ' ' << (std::isinf(e) ? 10.0 : std::max(e, 1e-10));
        }
      }
      out << '\n';
    }
    files.push_back(path);
  }
  const std::string script = dir + "/plot.gp";
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 1280,720 font 'sans,9'\n"
       << "set output '" << png << "'\n"
       << "set multiplot layout 2,4 title 'gradaccum: relative error of the accumulated, "
          "normalised gradient vs float64 ("
       << ga::device_name(device) << "; non-finite plotted at 10, exact at 1e-10)'\n"
       << "set logscale x 2\nset logscale y 10\nset format x '2^{%L}'\nset xtics 16\n"
       << "set format y '10^{%L}'\n"
       << "set yrange [1e-10:20]\nset grid\nset xlabel 'k (micro-batches)'\n"
       << "set key off\n";
    for (std::size_t i = 0; i < files.size(); ++i) {
      gp << "set title '" << study::gradient_source_name(sources[i]) << "'\n"
         << "plot for [c=2:" << modes.size() + 1 << "] '" << files[i]
         << "' using 1:c with linespoints pt 7 ps 0.4 lw 1.5 title columnheader(c)\n";
    }
    // The eighth panel: the legend.
    gp << "unset title\nunset logscale\nunset xlabel\nunset grid\nunset tics\nunset border\n"
       << "set yrange [0:1]\nset xrange [0:1]\nset key center center box\n"
       << "plot for [c=2:" << modes.size() + 1 << "] '" << files[0]
       << "' using (NaN):c with linespoints pt 7 lw 1.5 title columnheader(c)\n"
       << "unset multiplot\n";
  }
  ga::tools::run_gnuplot(script, "--png");
  for (const std::string& f : files)
    std::remove(f.c_str());
  std::remove(script.c_str());
  rmdir(dir.c_str());
}

int run(const Config& c) {
  study::StudyOptions o;
  o.device = c.device;
  o.seed = c.seed;
  const std::vector<std::int64_t> counts = study::doubling_counts(c.max_accum);
  const auto& modes = study::all_accum_modes();
  const auto& sources = study::all_gradient_sources();
  const auto t0 = std::chrono::steady_clock::now();
  if (!c.csv.empty() && !std::ofstream(c.csv)) {
    throw FlagError("--csv " + c.csv + ": cannot open for writing");
  }
  if (!c.png.empty() && !ga::tools::on_path("gnuplot")) {
    throw FlagError(ga::tools::no_gnuplot_message("--png"));
  }

  std::printf("gradaccum-stability: %s, k = 1..%lld (%zu counts)", ga::device_name(c.device),
              static_cast<long long>(c.max_accum), counts.size());
  if (c.extra_accum > 0) {
    std::printf(" + one accumulation of %lld additions per mode",
                static_cast<long long>(c.extra_accum));
  }
  std::printf(", %zu modes x %zu sources, seed %llu\n", modes.size(), sources.size(),
              static_cast<unsigned long long>(c.seed));
  std::printf(
      "MLP %lld-%lld-%lld, %lld samples per micro-batch (L1 loss summed); synthetic "
      "sources: %lld values per micro-batch; pools of %lld micro-batches (then cycled)\n",
      static_cast<long long>(o.mlp_in), static_cast<long long>(o.mlp_hidden),
      static_cast<long long>(o.mlp_out), static_cast<long long>(o.mlp_micro_batch),
      static_cast<long long>(o.synthetic_entries), static_cast<long long>(o.pool_rows));
  std::printf(
      "static loss scale %g; dynamic: start %g, x%g on overflow (micro-batch dropped), "
      "x%g after %llu clean micro-batches\n",
      static_cast<double>(o.static_scale), static_cast<double>(o.dynamic_scaling.init_scale),
      static_cast<double>(o.dynamic_scaling.backoff_factor),
      static_cast<double>(o.dynamic_scaling.growth_factor),
      static_cast<unsigned long long>(o.dynamic_scaling.growth_interval));
  std::printf(
      "error = ||g - g64|| / ||g64|| of the normalised gradient (g64: float64 sum of the "
      "same f32 addends)\n");

  const Progress progress;
  std::vector<Series> series;
  std::vector<study::CellResult> all;
  std::vector<study::CellResult> extra;
  for (study::GradientSource s : sources) {
    const std::string sname = study::gradient_source_name(s);
    progress.show(sname + ": building the gradient pool", 0, o.pool_rows);
    const study::GradientPool pool(s, o);
    for (study::AccumMode m : modes) {
      const std::string what = sname + " " + study::accum_mode_name(m);
      Series ser{s, m, study::run_sweep(m, pool, counts, o, [&](std::int64_t done) {
                   progress.show(what, done, counts.back());
                 })};
      all.insert(all.end(), ser.cells.begin(), ser.cells.end());
      series.push_back(std::move(ser));
      if (s == study::GradientSource::Mlp && c.extra_accum > 0) {
        extra.push_back(study::run_sweep(m, pool, {c.extra_accum}, o, [&](std::int64_t done) {
                          progress.show(what + " (extra)", done, c.extra_accum);
                        }).front());
      }
    }
  }
  progress.clear();

  // Per source: relative error by k (rows) and mode (columns).
  for (study::GradientSource s : sources) {
    std::printf("\nsource %s: %s\n", study::gradient_source_name(s),
                study::gradient_source_description(s));
    std::printf("%9s", "k");
    for (study::AccumMode m : modes)
      std::printf(" %13s", study::accum_mode_name(m));
    std::printf("\n");
    for (std::size_t i = 0; i < counts.size(); ++i) {
      std::printf("%9lld", static_cast<long long>(counts[i]));
      for (const Series& ser : series) {
        if (ser.source == s) std::printf(" %13s", fmt(ser.cells[i].rel_error).c_str());
      }
      std::printf("\n");
    }
  }

  auto summary_row = [](const study::CellResult& r) {
    std::printf(
        "%-15s %-4s %-14s %9lld %11s %11s %9.3g %9.3g %8lld %9g\n",
        study::gradient_source_name(r.source), ga::dtype_name(study::accum_mode_grad_dtype(r.mode)),
        study::accum_mode_name(r.mode), static_cast<long long>(r.accum), fmt(r.rel_error).c_str(),
        fmt(r.max_abs_error).c_str(), r.underflow_frac, r.overflow_frac,
        static_cast<long long>(r.dropped), static_cast<double>(r.loss_scale));
  };
  std::printf("\nsummary at k = %lld%s\n", static_cast<long long>(c.max_accum),
              c.extra_accum > 0 ? ", then the long accumulation on the MLP's gradients" : "");
  std::printf("%-15s %-4s %-14s %9s %11s %11s %9s %9s %8s %9s\n", "source", "grad", "mode", "accum",
              "rel_error", "max_abs", "underflow", "overflow", "dropped", "scale");
  for (const Series& ser : series)
    summary_row(ser.cells.back());
  for (const study::CellResult& r : extra)
    summary_row(r);
  all.insert(all.end(), extra.begin(), extra.end());

  if (!c.csv.empty()) {
    write_csv(c.csv, all, c.device);
    std::printf("\nwrote %s\n", c.csv.c_str());
  }
  if (!c.png.empty()) {
    write_png(c.png, series, counts, c.device);
    std::printf("wrote %s\n", c.png.c_str());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("done in %.1f s\n", secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ga::tools::run_main("gradaccum-stability", [&] { return run(parse(argc, argv)); });
}
