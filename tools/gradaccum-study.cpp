// gradaccum-study: the forum's four questions answered by measurement on Fashion-MNIST (the
// autoencoder of gradaccum-train's main job), written to OUT/report.md with CSV files and PNG
// plots (gnuplot), and OUT/claims.txt, one "PASS|FAIL claim" line per claim the report makes:
//   1. Same step?      k micro-batches against the big batch, gradaccum's window against the
//                      per-micro-batch recipe and the forum's naive loop;
//   2. Which lr?       constant, linear and square-root scaling of the learning rate as the
//                      effective batch grows by accumulation, for SGD and AdamW;
//   3. How far?        the accumulation modes on this model's gradients, k up to 10^5;
//   4. BatchNorm?      ghost against window batch norm as k grows.
// --config small runs in about a minute (CI); --config full is the report of docs/forum.md.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iterator>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/fashion_mnist.h"
#include "flags.h"
#include "gnuplot.h"
#include "study/accumulation_study.h"
#include "study/forum_runs.h"

namespace ga = gradaccum;
namespace st = gradaccum::study;
using ga::tools::FlagError;

namespace {

const char* kUsage = R"(usage: gradaccum-study [--config small|full] [--out DIR]

Answers the forum's four questions on Fashion-MNIST (784 -> hidden -> 784 autoencoder, L1 loss)
and writes DIR/report.md, DIR/*.csv, DIR/*.png (gnuplot) and DIR/claims.txt (PASS or FAIL for
each claim the report makes; the exit status is 3 when one fails).
  --config small|full   small: 512 training images, about a minute; full: all 60,000, the
                        report of docs/forum.md (about 3 minutes on 2 cores)         [small]
  --out DIR             where the report goes                                [build/study]
The data: Debian's dataset-fashion-mnist, or GRADACCUM_FASHION_MNIST_DIR. Runs on the CPU.
  --help
)";

struct Config {
  std::string name;
  std::int64_t train_rows, test_rows, hidden, batch;
  std::vector<std::int64_t> ks;               // part 1 and 4: micro-batches per step
  std::vector<std::int64_t> uneven;           // part 1: an uneven split of the batch
  std::int64_t steps;                         // parts 1 and 4
  std::int64_t micro;                         // part 2: micro-batch rows
  std::vector<std::int64_t> batches;          // part 2: effective batches (multiples of micro)
  std::int64_t epochs;                        // part 2
  double sgd_lr, adamw_lr;                    // part 2: at the smallest batch
  std::int64_t pool_rows, pool_micro, max_k;  // part 3
};

Config small_config() {
  return {"small", 512,  128, 16, 64,  {1, 4, 16, 64}, {20, 20, 20, 4}, 8, 8, {8, 16, 32, 64}, 1,
          0.25,    1e-3, 64,  2,  1000};
}
Config full_config() {
  return {
      "full", 0,    0,    64,  256, {1, 4, 64, 256}, {100, 100, 56}, 234, 64, {64, 256, 1024, 4096},
      2,      0.25, 1e-3, 512, 4,   100000};
}

std::vector<std::int64_t> even_split(std::int64_t batch, std::int64_t k) {
  std::vector<std::int64_t> s(static_cast<std::size_t>(k), batch / k);
  for (std::int64_t i = 0; i < batch % k; ++i)
    s[static_cast<std::size_t>(i)] += 1;
  return s;
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

class Study {
 public:
  Study(Config c, std::string out, std::string self)
      : c_(std::move(c)), out_(std::move(out)), self_(std::move(self)) {
    tty_ = isatty(STDOUT_FILENO) != 0;
  }

  int run() {
    std::filesystem::create_directories(out_);
    if (!ga::tools::on_path("gnuplot")) throw FlagError(ga::tools::no_gnuplot_message("--out"));
    data_ = st::load_autoencoder_data(c_.train_rows, c_.test_rows);
    estimate();
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
    report_ << "# The forum's questions, measured\n\nMade by `gradaccum-study --config " << c_.name
            << "` on " << date << " (CPU, " << data_.train.size(0) << " training and "
            << data_.test.size(0) << " test images).\n\n";
    part1();
    part2();
    part3();
    part4();
    std::ofstream(out_ + "/report.md") << report_.str();
    std::ofstream claims(out_ + "/claims.txt");
    int failed = 0;
    for (const auto& [ok, text] : claims_) {
      claims << (ok ? "PASS " : "FAIL ") << text << "\n";
      failed += ok ? 0 : 1;
    }
    std::printf("\n%s/report.md written; %zu claims, %d failed\n", out_.c_str(), claims_.size(),
                failed);
    return failed == 0 ? 0 : 3;
  }

 private:
  st::RunSpec base() const {
    st::RunSpec s;
    s.hidden = c_.hidden;
    s.batch = c_.batch;
    s.steps = c_.steps;
    s.lr = c_.sgd_lr;
    s.momentum = 0.9;
    return s;
  }

  // A warm-up run's time per sample, times the samples the plan trains (window batch norm
  // counted 2.5 times, the stability sweep left out): printed before the first part.
  // Two warm-up runs give a step's time as a + b·k (k micro-batches); the plan's runs are added
  // up with it (window batch norm counted 2.5 times, part 2's default GEMMs as deterministic
  // ones, the stability sweep left out) and printed before the first part.
  void estimate() {
    st::RunSpec s = base();
    s.steps = 2;
    const double t1 = st::train_run(s, data_).seconds_per_step;
    const std::int64_t k4 = std::max<std::int64_t>(1, c_.batch / 4);
    s.split = even_split(c_.batch, k4);
    const double tk = st::train_run(s, data_).seconds_per_step;
    const double per_mb =
        std::max(0.0, (tk - t1) / static_cast<double>(std::max<std::int64_t>(1, k4 - 1)));
    const double per_sample = std::max(0.0, t1 - per_mb) / static_cast<double>(c_.batch);
    auto run_time = [&](double samples, double micro_batches) {
      return samples * per_sample + micro_batches * per_mb;
    };
    const double steps = static_cast<double>(c_.steps), batch = static_cast<double>(c_.batch);
    double total = 0;
    for (std::int64_t k : c_.ks)
      total += run_time(steps * batch, steps * static_cast<double>(k));
    total += 4 * run_time(steps * batch, steps * 4);  // uneven splits and the naive loop
    const double n = static_cast<double>(c_.epochs * data_.train.size(0));
    total += 6 * static_cast<double>(c_.batches.size()) *
             run_time(n, n / static_cast<double>(c_.micro));  // part 2: 2 optimizers x 3 rules
    for (std::int64_t k = 1; k <= c_.batch; k *= 2)
      total += 3.5 * run_time((steps + 1) * batch, (steps + 1) * static_cast<double>(k));
    std::printf(
        "gradaccum-study (%s): %lld training images, estimated %.0f s on this machine, plus the "
        "stability sweep to k = %lld\n",
        c_.name.c_str(), static_cast<long long>(data_.train.size(0)), total,
        static_cast<long long>(c_.max_k));
    std::fflush(stdout);
  }

  void progress(const std::string& what) {
    if (tty_) {
      std::printf("\r\033[K%s", what.c_str());
    } else {
      std::printf("%s\n", what.c_str());
    }
    std::fflush(stdout);
  }

  void claim(bool ok, const std::string& text) {
    claims_.emplace_back(ok, text);
    report_ << "- " << (ok ? "**Holds:** " : "**FAILS:** ") << text << "\n";
  }

  // Writes the gnuplot script next to the report (to regenerate a plot by hand) and runs it.
  void plot(const std::string& name, const std::string& script) {
    const std::string path = out_ + "/" + name + ".gp";
    std::ofstream gp(path);
    gp << script;
    if (!gp.flush()) throw std::runtime_error("--out: cannot write " + path);
    gp.close();
    ga::tools::run_gnuplot(path, "--out");
  }

  // ---- 1. Same step? ----
  void part1() {
    report_ << "## 1. Is k micro-batches the same step as the big batch?\n\n";
    std::map<std::int64_t, st::RunResult> runs;
    for (std::int64_t k : c_.ks) {
      progress("[1/4] window, " + std::to_string(k) + " micro-batches");
      st::RunSpec s = base();
      s.split = even_split(c_.batch, k);
      runs[k] = st::train_run(s, data_);
    }
    st::RunSpec u = base();
    u.split = c_.uneven;
    progress("[1/4] uneven split, window and per-micro-batch recipe");
    const st::RunResult uneven_window = st::train_run(u, data_);
    u.recipe = st::Recipe::MicroBatchMean;
    const st::RunResult uneven_micro = st::train_run(u, data_);
    const std::int64_t k_naive = c_.ks[1];
    st::RunSpec n = base();
    n.split = even_split(c_.batch, k_naive);
    n.recipe = st::Recipe::NaiveSum;
    progress("[1/4] the naive loop");
    const st::RunResult naive = st::train_run(n, data_);
    n.lr = base().lr / static_cast<double>(k_naive);
    const st::RunResult naive_scaled = st::train_run(n, data_);
    const std::vector<float> g_naive = st::recipe_gradient(n, data_);
    st::RunSpec w = n;
    w.recipe = st::Recipe::Window;
    const std::vector<float> g_true = st::recipe_gradient(w, data_);
    std::vector<float> g_naive_over_k;
    for (float g : g_naive)
      g_naive_over_k.push_back(g / static_cast<float>(k_naive));

    const st::RunResult& big = runs.at(c_.ks.front());
    std::ofstream csv(out_ + "/same_step.csv");
    csv << "step";
    for (std::int64_t k : c_.ks)
      csv << ",k" << k;
    csv << ",naive_k" << k_naive << "\n";
    for (std::int64_t i = 0; i < c_.steps; ++i) {
      csv << i + 1;
      for (std::int64_t k : c_.ks)
        csv << "," << runs.at(k).losses[static_cast<std::size_t>(i)];
      csv << "," << naive.losses[static_cast<std::size_t>(i)] << "\n";
    }
    csv.close();
    std::ostringstream p;
    p << "set terminal pngcairo size 800,500\nset output '" << out_
      << "/same_step.png'\nset datafile separator ','\nset key autotitle columnhead\n"
      << "set xlabel 'step'\nset ylabel 'training L1'\nset logscale y\nplot ";
    for (std::size_t j = 0; j < c_.ks.size(); ++j)
      p << "'" << out_ << "/same_step.csv' using 1:" << j + 2 << " with lines lw " << 2 + j << ", ";
    p << "'" << out_ << "/same_step.csv' using 1:" << c_.ks.size() + 2 << " with lines dt 2\n";
    plot("same_step", p.str());

    report_ << "Batch " << c_.batch << ", " << c_.steps << " SGD steps (lr " << c_.sgd_lr
            << ", momentum 0.9), deterministic mode. gradaccum's window sums "
               "every micro-batch's loss and divides once by the window's count:\n\n"
            << "| split | final training L1 | test L1 | weights (FNV-1a) |\n| --- | ---: | ---: | "
               "--- |\n";
    bool same = true;
    for (std::int64_t k : c_.ks) {
      const st::RunResult& r = runs.at(k);
      report_ << "| " << k << " × " << c_.batch / k << " | " << fmt("%.6f", r.losses.back())
              << " | " << fmt("%.6f", r.test_l1) << " | `" << r.hash << "` |\n";
      same = same && r.hash == big.hash;
    }
    report_ << "| uneven " << split_text(c_.uneven) << " | "
            << fmt("%.6f", uneven_window.losses.back()) << " | "
            << fmt("%.6f", uneven_window.test_l1) << " | `" << uneven_window.hash << "` |\n\n"
            << "![training loss per split](same_step.png)\n\n";
    claim(same, "every even split gives the big batch's weights, byte for byte");
    claim(uneven_window.hash == big.hash,
          "the uneven split " + split_text(c_.uneven) + " gives them too");
    const double d_micro = st::relative_distance(uneven_micro.parameters, big.parameters);
    claim(d_micro > 1e-6,
          "the per-micro-batch recipe (each micro-batch's mean, then / k) on the "
          "uneven split does not: its weights are " +
              fmt("%.2e", d_micro) + " away (relative)");
    const double d_naive = st::relative_distance(g_naive_over_k, g_true);
    claim(d_naive < 1e-5,
          "the forum's naive loop (loss.backward() on each micro-batch's mean, no "
          "division) hands the optimizer " +
              std::to_string(k_naive) + " times the true gradient (|g/" + std::to_string(k_naive) +
              " - g_true| / |g_true| = " + fmt("%.1e", d_naive) + ")");
    report_ << "\nThe naive loop at lr " << c_.sgd_lr << " ends at test L1 "
            << fmt("%.4f", naive.test_l1) << "; at lr " << c_.sgd_lr << "/" << k_naive
            << " it ends at " << fmt("%.4f", naive_scaled.test_l1)
            << " (the window: " << fmt("%.4f", big.test_l1)
            << "). Its gradient is k times too large, which is exactly why the forum's loop "
               "needed a smaller learning rate. With the division done right there is nothing to "
               "retune: **the same step at the same learning rate.**\n\n";
    part1_world();
  }

  // Part 1 across processes: gradaccum-train (beside this program) under mpirun -np W with
  // 8 / W micro-batches a rank, exact accumulation and deterministic mode; the saved weights'
  // bytes hashed. Skipped, and said so, without mpirun or gradaccum-train.
  void part1_world() {
    const std::string train =
        (std::filesystem::path(self_).parent_path() / "gradaccum-train").string();
    if (!std::filesystem::exists(train) || !ga::tools::on_path("mpirun")) {
      report_ << "Across processes: not measured here ("
              << (ga::tools::on_path("mpirun") ? "no gradaccum-train beside this program"
                                               : "no mpirun on PATH")
              << "); `tests/programs/dist_train.sh` checks it in CI.\n\n";
      return;
    }
    report_ << "Across processes (gradaccum-train under mpirun, " << c_.steps
            << " steps, exact accumulation, deterministic mode, 8 micro-batches a step in all):\n\n"
               "| world × micro-batches a rank | weights (FNV-1a of the saved files) |\n| --- | "
               "--- |\n";
    std::vector<std::string> hashes;
    for (int world : {1, 2, 4}) {
      progress("[1/4] mpirun -np " + std::to_string(world));
      const std::string dir = out_ + "/world" + std::to_string(world);
      std::ostringstream cmd;
      cmd << "mpirun -np " << world << " --oversubscribe '" << train
          << "' --device cpu --dataset fashion-mnist --hidden " << c_.hidden << " --batch "
          << c_.batch << " --accum " << 8 / world << " --steps " << c_.steps << " --lr "
          << c_.sgd_lr << " --deterministic --accum-mode exact --print-every 0 --save-weights '"
          << dir << "' > '" << out_ << "/world" << world << ".log' 2>&1";
      const int rc = std::system(cmd.str().c_str());
      std::string hash = "failed (see world" + std::to_string(world) + ".log)";
      if (rc == 0) {
        std::string bytes;
        for (const char* f : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}) {
          std::ifstream in(dir + "/" + f + ".npy", std::ios::binary);
          bytes += std::string(std::istreambuf_iterator<char>(in), {});
        }
        hash = st::fnv1a_hex(bytes.data(), bytes.size());
      }
      hashes.push_back(hash);
      report_ << "| " << world << " × " << 8 / world << " | `" << hash << "` |\n";
    }
    report_ << "\n";
    claim(hashes[0] == hashes[1] && hashes[0] == hashes[2] && hashes[0].size() == 16,
          "world 1 × 8, 2 × 4 and 4 × 2 micro-batches train to the same bytes under mpirun");
    report_ << "\n";
  }

  // "linear (test L1 0.3177, against 0.3527 constant and 0.3432 sqrt)".
  std::string best_rule(const std::string& opt) const {
    const std::map<std::string, double>& r = at_largest_.at(opt);
    auto best = r.begin();
    for (auto it = r.begin(); it != r.end(); ++it)
      if (it->second < best->second) best = it;
    std::string text = best->first + " (test L1 " + fmt("%.4f", best->second) + ", against";
    bool first = true;
    for (const auto& [rule, l1] : r) {
      if (rule == best->first) continue;
      text += std::string(first ? " " : " and ") + fmt("%.4f", l1) + " " + rule;
      first = false;
    }
    return text + ")";
  }

  // The test L1 of the constant prediction "the mean training image".
  double mean_image_l1() const {
    const std::int64_t px = ga::data::kFashionMnistPixels;
    std::vector<double> mean(static_cast<std::size_t>(px), 0.0);
    const std::vector<float> train = data_.train.to_vector(), test = data_.test.to_vector();
    const std::int64_t n = data_.train.size(0), m = data_.test.size(0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < px; ++j)
        mean[static_cast<std::size_t>(j)] += train[static_cast<std::size_t>(i * px + j)];
    double l1 = 0;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < px; ++j)
        l1 += std::fabs(test[static_cast<std::size_t>(i * px + j)] -
                        mean[static_cast<std::size_t>(j)] / static_cast<double>(n));
    return l1 / static_cast<double>(m * px);
  }

  static std::string split_text(const std::vector<std::int64_t>& s) {
    std::string t;
    for (std::int64_t n : s)
      t += (t.empty() ? "" : "+") + std::to_string(n);
    return t;
  }

  // ---- 2. Which learning rate? ----
  void part2() {
    report_ << "## 2. Which learning rate when the effective batch grows?\n\n";
    const std::int64_t b0 = c_.batches.front();
    std::ofstream csv(out_ + "/lr_scaling.csv");
    csv << "optimizer,rule,batch,lr,test_l1\n";
    report_ << "Micro-batches of " << c_.micro << " rows, the effective batch grown by "
            << "accumulation, " << c_.epochs
            << " epoch(s) at every batch (the same samples), the learning rate at batch " << b0
            << " being SGD " << c_.sgd_lr << " (momentum 0.9) and AdamW " << c_.adamw_lr
            << ". Final test L1:\n\n| optimizer | rule |";
    for (std::int64_t b : c_.batches)
      report_ << " B = " << b << " |";
    report_ << "\n| --- | --- |";
    for (std::size_t i = 0; i < c_.batches.size(); ++i)
      report_ << " ---: |";
    report_ << "\n";
    for (st::OptimizerKind opt : {st::OptimizerKind::Sgd, st::OptimizerKind::AdamW}) {
      for (const char* rule : {"constant", "linear", "sqrt"}) {
        report_ << "| " << st::optimizer_name(opt) << " | " << rule << " |";
        for (std::int64_t b : c_.batches) {
          const double ratio = static_cast<double>(b) / static_cast<double>(b0);
          const double lr0 = opt == st::OptimizerKind::Sgd ? c_.sgd_lr : c_.adamw_lr;
          const double lr = std::string(rule) == "constant" ? lr0
                            : std::string(rule) == "linear" ? lr0 * ratio
                                                            : lr0 * std::sqrt(ratio);
          progress(std::string("[2/4] ") + st::optimizer_name(opt) + ", " + rule +
                   ", B = " + std::to_string(b));
          st::RunSpec s = base();
          s.optimizer = opt;
          s.batch = b;
          s.split = even_split(b, b / c_.micro);
          s.steps = std::max<std::int64_t>(1, c_.epochs * data_.train.size(0) / b);
          s.lr = lr;
          s.deterministic = false;
          const st::RunResult r = st::train_run(s, data_);
          csv << st::optimizer_name(opt) << "," << rule << "," << b << "," << lr << "," << r.test_l1
              << "\n";
          report_ << " " << fmt("%.4f", r.test_l1) << " |";
          if (b == c_.batches.back()) at_largest_[st::optimizer_name(opt)][rule] = r.test_l1;
        }
        report_ << "\n";
      }
    }
    csv.close();
    std::ostringstream p;
    p << "set terminal pngcairo size 900,450\nset output '" << out_
      << "/lr_scaling.png'\nset multiplot layout 1,2\nset logscale x 2\nset xlabel 'effective "
         "batch'\nset ylabel 'test L1'\nset datafile separator ','\n";
    for (const char* opt : {"SGD", "AdamW"}) {
      p << "set title '" << opt << "'\nplot ";
      const char* rules[] = {"constant", "linear", "sqrt"};
      for (int i = 0; i < 3; ++i) {
        p << "'" << out_ << "/lr_scaling.csv' using (strcol(1) eq '" << opt << "' && strcol(2) eq '"
          << rules[i] << "' ? $3 : 1/0):5 with linespoints title '" << rules[i] << "'"
          << (i < 2 ? ", " : "\n");
      }
    }
    p << "unset multiplot\n";
    plot("lr_scaling", p.str());
    report_ << "\nFor scale: predicting the mean training image for every test image scores "
            << fmt("%.4f", mean_image_l1())
            << "; a run near that did not learn (its learning rate was too large).\n";
    report_ << "\nAt B = " << c_.batches.back() << " the best rule is, for SGD, "
            << best_rule("SGD") << ", and for AdamW, " << best_rule("AdamW") << ".\n";
    report_ << "\n![test L1 against the effective batch](lr_scaling.png)\n\n"
            << "\"lr = 1e-4 × gradient_accumulation_steps\" is not a rule of accumulation: with "
               "the loss normalised by the true count, k micro-batches are the big batch's step, "
               "so the question is only how the learning rate should follow the batch size, and "
               "the table answers it per optimizer. Pegasus's recipe multiplied by k because its "
               "loss was a token sum divided by k per micro-batch, i.e. it patched a "
               "normalisation.\n\n";
  }

  // ---- 3. How far? ----
  void part3() {
    report_ << "## 3. How far can you accumulate?\n\n";
    progress("[3/4] this model's micro-batch gradients");
    st::RunSpec s = base();
    s.hidden = 16;
    std::int64_t entries = 0;
    std::vector<float> g =
        st::micro_batch_gradients(s, data_, c_.pool_rows, c_.pool_micro, &entries);
    const st::GradientPool pool(std::move(g), c_.pool_rows, entries,
                                c_.pool_micro * ga::data::kFashionMnistPixels);
    st::StudyOptions o;
    const std::vector<std::int64_t> counts = st::doubling_counts(c_.max_k);
    std::ofstream csv(out_ + "/how_far.csv");
    csv << "mode,k,rel_error\n";
    report_ << "The gradient of fc2 (" << entries << " values) of " << c_.pool_rows
            << " micro-batches of " << c_.pool_micro
            << " images each, cycled, accumulated k times in each mode against a float64 sum "
               "of the same addends (relative L2 error of the normalised gradient):\n\n"
            << "| mode | k = " << counts[counts.size() / 2] << " | k = " << counts.back()
            << " |\n| --- | ---: | ---: |\n";
    std::map<st::AccumMode, double> at_max;
    for (st::AccumMode m : st::all_accum_modes()) {
      progress(std::string("[3/4] ") + st::accum_mode_name(m));
      const std::vector<st::CellResult> r = st::run_sweep(m, pool, counts, o);
      for (const st::CellResult& cell : r)
        csv << st::accum_mode_name(m) << "," << cell.accum << "," << cell.rel_error << "\n";
      at_max[m] = r.back().rel_error;
      report_ << "| " << st::accum_mode_name(m) << " | "
              << fmt("%.2e", r[counts.size() / 2].rel_error) << " | "
              << fmt("%.2e", r.back().rel_error) << " |\n";
    }
    csv.close();
    std::ostringstream p;
    p << "set terminal pngcairo size 800,500\nset output '" << out_
      << "/how_far.png'\nset logscale xy\nset xlabel 'k'\nset ylabel 'relative error'\nset "
         "datafile separator ','\nset key outside\nplot ";
    const auto& modes = st::all_accum_modes();
    for (std::size_t i = 0; i < modes.size(); ++i) {
      p << "'" << out_ << "/how_far.csv' using (strcol(1) eq '" << st::accum_mode_name(modes[i])
        << "' ? $2 : 1/0):($3 > 0 ? $3 : 1e-12) with lines lw 2 title '"
        << st::accum_mode_name(modes[i]) << "'" << (i + 1 < modes.size() ? ", " : "\n");
    }
    plot("how_far", p.str());
    report_ << "\n![error against k](how_far.png)\n\n";
    claim(at_max[st::AccumMode::F32Kahan] < 1e-6 && at_max[st::AccumMode::F32Exact] < 1e-6,
          "Kahan and exact accumulation stay below 1e-6 at k = " + std::to_string(c_.max_k));
    claim(at_max[st::AccumMode::F16InF16] > at_max[st::AccumMode::F16InF32],
          "accumulating fp16 gradients in fp16 is worse than in fp32");
    report_ << "\n";
  }

  // ---- 4. BatchNorm? ----
  void part4() {
    report_ << "## 4. Is it only the BatchNorm layers?\n\n";
    std::ofstream csv(out_ + "/batch_norm.csv");
    csv << "k,ghost_1step,window_1step,ghost_end,window_end,ghost_test_l1,window_test_l1\n";
    report_ << "784 → " << c_.hidden << " → BatchNorm1d → ReLU → 784, batch " << c_.batch
            << ", deterministic mode. Distance of the weights to the big batch's, ‖θ_k − θ_big‖ / "
               "‖θ_big − θ_0‖, after 1 step and after "
            << c_.steps
            << " steps:\n\n| k | ghost: 1 step | ghost: end | ghost: test L1 | window: 1 step "
               "| window: end | window: test L1 |\n| ---: | ---: | ---: | ---: | ---: | ---: | "
               "---: |\n";
    st::RunSpec s = base();
    std::map<std::pair<bool, std::int64_t>, st::RunResult> runs;
    st::RunResult theta0;
    {
      st::RunSpec z = s;
      z.batch_norm = st::BatchNormMode::Ghost;
      z.steps = 1;
      z.lr = 0;
      theta0 = st::train_run(z, data_);
    }
    bool window_same = true, ghost_differs = false;
    std::vector<std::int64_t> ks;
    for (std::int64_t k = 1; k <= c_.batch; k *= 2)
      ks.push_back(k);
    std::map<std::int64_t, std::vector<double>> row;
    for (std::int64_t steps : {std::int64_t{1}, c_.steps}) {
      for (bool window : {false, true}) {
        for (std::int64_t k : ks) {
          if (!window && c_.batch / k < 2) continue;  // ghost BN refuses one row
          progress("[4/4] " + std::string(window ? "window" : "ghost") +
                   " BN, k = " + std::to_string(k) + ", " + std::to_string(steps) + " step(s)");
          st::RunSpec r = s;
          r.batch_norm = window ? st::BatchNormMode::Window : st::BatchNormMode::Ghost;
          r.split = even_split(c_.batch, k);
          r.steps = steps;
          runs[{window, k * 1000000 + steps}] = st::train_run(r, data_);
        }
      }
    }
    auto distance = [&](bool window, std::int64_t k, std::int64_t steps) {
      return st::distance_to(runs.at({window, k * 1000000 + steps}),
                             runs.at({false, 1 * 1000000 + steps}), theta0);
    };
    for (std::int64_t k : ks) {
      const bool ghost = c_.batch / k >= 2;
      const double g1 = ghost ? distance(false, k, 1) : NAN,
                   ge = ghost ? distance(false, k, c_.steps) : NAN;
      const double w1 = distance(true, k, 1), we = distance(true, k, c_.steps);
      const double gl = ghost ? runs.at({false, k * 1000000 + c_.steps}).test_l1 : NAN;
      const double wl = runs.at({true, k * 1000000 + c_.steps}).test_l1;
      window_same = window_same && w1 == 0 && we == 0;
      ghost_differs = ghost_differs || (ghost && k > 1 && g1 > 1e-3);
      csv << k << "," << g1 << "," << w1 << "," << ge << "," << we << "," << gl << "," << wl
          << "\n";
      auto cell = [](double v) {
        return std::isnan(v) ? std::string("refused (1 row)")
               : v == 0      ? std::string("0")
                             : fmt("%.3g", v);
      };
      report_ << "| " << k << " | " << cell(g1) << " | " << cell(ge) << " | "
              << (std::isnan(gl) ? std::string("") : fmt("%.4f", gl)) << " | " << cell(w1) << " | "
              << cell(we) << " | " << fmt("%.4f", wl) << " |\n";
    }
    csv.close();
    std::ostringstream p;
    p << "set terminal pngcairo size 800,500\nset output '" << out_
      << "/batch_norm.png'\nset logscale x 2\nset xlabel 'micro-batches per step (k)'\nset "
         "ylabel 'distance to the big batch'\nset datafile separator ','\nset key noenhanced\n"
      << "plot '" << out_
      << "/batch_norm.csv' every ::1 using 1:2 with linespoints title 'ghost, 1 step', '' every "
         "::1 using 1:4 with linespoints title 'ghost, end', '' every ::1 using 1:3 with "
         "linespoints title 'window, 1 step', '' every ::1 using 1:5 with linespoints title "
         "'window, end'\n";
    plot("batch_norm", p.str());
    // The training curves: ghost at every k it takes, window at the largest k (its curve is the
    // big batch's, the same bytes at every k).
    std::ofstream curves(out_ + "/batch_norm_curves.csv");
    curves << "step";
    std::vector<std::pair<bool, std::int64_t>> curve_runs;
    for (std::int64_t k : ks) {
      if (c_.batch / k >= 2) curve_runs.emplace_back(false, k);
    }
    curve_runs.emplace_back(true, ks.back());
    for (const auto& [window, k] : curve_runs)
      curves << "," << (window ? "window k=" : "ghost k=") << k;
    curves << "\n";
    for (std::int64_t i = 0; i < c_.steps; ++i) {
      curves << i + 1;
      for (const auto& [window, k] : curve_runs)
        curves << ","
               << runs.at({window, k * 1000000 + c_.steps}).losses[static_cast<std::size_t>(i)];
      curves << "\n";
    }
    curves.close();
    std::ostringstream q;
    q << "set terminal pngcairo size 800,500\nset output '" << out_
      << "/batch_norm_curves.png'\nset xlabel 'step'\nset ylabel 'training L1'\nset logscale "
         "y\nset datafile separator ','\nset key noenhanced autotitle columnhead\nplot ";
    for (std::size_t j = 0; j < curve_runs.size(); ++j) {
      q << "'" << out_ << "/batch_norm_curves.csv' using 1:" << j + 2 << " with lines"
        << (curve_runs[j].first ? " lw 3 dt 2" : "") << (j + 1 < curve_runs.size() ? ", " : "\n");
    }
    plot("batch_norm_curves", q.str());
    report_ << "\n![distance to the big batch against k](batch_norm.png)\n\n"
            << "![training loss, ghost at each k and window](batch_norm_curves.png)\n\n";
    claim(ghost_differs,
          "ghost batch norm (each micro-batch's own statistics) moves the step away "
          "from the big batch's");
    claim(window_same,
          "window batch norm gives the big batch's weights, byte for byte, at every k");
  }

  Config c_;
  std::string out_;
  std::string self_;  // this program's path (gradaccum-train is looked for beside it)
  bool tty_ = false;
  st::AutoencoderData data_;
  std::ostringstream report_;
  std::vector<std::pair<bool, std::string>> claims_;
  std::map<std::string, std::map<std::string, double>> at_largest_;  // optimizer, rule: test L1
};

}  // namespace

int main(int argc, char** argv) {
  return ga::tools::run_main("gradaccum-study", [&]() -> int {
    const ga::tools::Flags f(argc, argv, {"config", "out"}, {"help"});
    if (f.on("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    const std::string config = f.choice("config", "small", {"small", "full"});
    const std::string out = f.str("out", "build/study");
    if (out.empty()) throw FlagError("--out needs a folder, got an empty one");
    std::error_code ec;
    std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (ec) self = argv[0];
    Study study(config == "full" ? full_config() : small_config(), out, self);
    return study.run();
  });
}
