// gradaccum-train: trains Linear(in, hidden) -> ReLU -> Linear(hidden, out) with L1 loss and
// SGD, each step one batch of B rows split in order into micro-batches accumulated in one window.
// Prints the loss per step and a summary; a progress line when stdout is a terminal. Under
// mpirun -np N, the N processes share each step's B rows (data parallelism: tools/world.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/nn.h"
#include "core/cuda_device.h"
#include "core/npy.h"
#include "core/random.h"
#include "flags.h"
#include "optim/optim.h"
#include "world.h"

namespace ga = gradaccum;
using ga::tools::FlagError;
using ga::tools::Flags;

namespace {

const char* kUsage = R"(usage: gradaccum-train [flags]

Trains Linear(in, hidden) -> ReLU -> Linear(hidden, out) with L1 loss and SGD. Step s uses rows
[s*B, (s+1)*B) of the data, split in order into micro-batches whose gradients are accumulated
into one optimizer step (divided once by the true count).

Under mpirun -np N (data parallelism over MPI), B is the global batch: rank r takes a contiguous
share of each step's rows (as even as possible), splits it with --accum or --micro-batch, and the
step reduces every rank's window once. Only rank 0 prints and saves.

  --device auto|cpu|cuda      where to train (auto: cuda when a device is present)    [auto]
  --dtype f32|f16             model dtype; gradients and master weights are always f32  [f32]
  --in N --hidden N --out N   layer sizes                                         [32 128 8]
  --batch B                   samples per optimizer step (all ranks together)           [256]
  --accum K                   micro-batches per step and rank (sizes as even as possible)  [1]
  --micro-batch M             or: micro-batches of M rows (the last one may be smaller)
  --steps S                   optimizer steps                                            [100]
  --lr X --momentum X --weight-decay X --dampening X --nesterov                  [0.05 0.9 0 0]
  --reduction mean|sum        L1 loss reduction                                         [mean]
  --normalize window|micro-batch
                              window: divide the window's sums once by the true count (exact);
                              micro-batch: per-micro-batch mean, then / K (the common recipe)
  --accum-mode naive|kahan|exact
                              gradient accumulation: exact sums do not depend on the order
                              of the micro-batches or their split over ranks (72 bytes a
                              parameter)                                              [naive]
  --loss-scale none|dynamic|<value>                                                     [none]
  --overflow skip-step|drop-micro-batch                                           [skip-step]
  --deterministic             bit-identical parameters whatever the micro-batch split (f32)
  --gemm auto|handwritten|vendor                                                        [auto]
  --graph auto|on|off         replay each micro-step as a CUDA graph (one per micro-batch size;
                              auto: on for cuda, off for cpu); falls back to op by op, with the
                              reason printed, when the step cannot be captured           [auto]
  --seed N                    initialisation and synthetic data seed                       [0]
  --data X.npy --targets Y.npy
                              training data [rows, in] and targets [rows, out]; without them a
                              synthetic regression task (a fixed random teacher network)
  --load-weights DIR --save-weights DIR
                              fc1.weight.npy, fc1.bias.npy, fc2.weight.npy, fc2.bias.npy
  --print-every N             print the loss every N steps (0: only the summary)           [1]
  --dist-timeout S            under mpirun: a step's reduction that waits longer than S
                              seconds for the other ranks ends the run (0: wait forever)   [300]
  --overlap [--bucket-kb N]   under mpirun: reduce the gradients in buckets of N KiB, each
                              started during the last micro-batch's backward (CPU, naive,
                              skip-step; measured no faster on 2 cores: docs/distributed.md)
                                                                                        [1024]
  --help
)";

struct Config {
  ga::Device device = ga::Device::CPU;
  ga::DType dtype = ga::DType::f32;
  std::int64_t in = 32, hidden = 128, out = 8, batch = 256, steps = 100, print_every = 1;
  std::int64_t accum = 1, micro = 0;  // --accum, --micro-batch (0: not given)
  double dist_timeout = 300;
  double lr = 0.05, momentum = 0.9, weight_decay = 0, dampening = 0;
  bool nesterov = false, deterministic = false, graph = false;
  ga::Reduction reduction = ga::Reduction::Mean;
  ga::optim::WindowOptions window;
  ga::GemmConfig gemm;
  std::uint64_t seed = 0;
  std::string data, targets, load_dir, save_dir;
};

// Rank r's share of a step's B rows over N ranks: [first, first + rows).
struct Share {
  std::int64_t first = 0, rows = 0;
};
Share share_of(std::int64_t batch, int ranks, int r) {
  const std::int64_t base = batch / ranks, extra = batch % ranks;
  return {r * base + std::min<std::int64_t>(r, extra), base + (r < extra ? 1 : 0)};
}

// Splits a share of rows into micro-batch sizes: K as even as possible (fewer when the share has
// fewer rows; none for an empty share), or chunks of M.
std::vector<std::int64_t> split_share(std::int64_t rows, std::int64_t accum, std::int64_t micro) {
  std::vector<std::int64_t> sizes;
  if (micro > 0) {
    for (std::int64_t r = 0; r < rows; r += micro)
      sizes.push_back(std::min(micro, rows - r));
  } else {
    const std::int64_t k = std::min(accum, rows);
    for (std::int64_t i = 0; i < k; ++i)
      sizes.push_back(rows / k + (i < rows % k));
  }
  return sizes;
}

// "a" or "a-b".
std::string range(std::int64_t lo, std::int64_t hi) {
  return lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi);
}

Config parse(int argc, char** argv) {
  const Flags f(
      argc, argv,
      {"device",      "dtype",       "in",           "hidden",     "out",          "batch",
       "accum",       "micro-batch", "steps",        "lr",         "momentum",     "weight-decay",
       "dampening",   "reduction",   "normalize",    "accum-mode", "loss-scale",   "overflow",
       "gemm",        "seed",        "data",         "targets",    "load-weights", "save-weights",
       "print-every", "graph",       "dist-timeout", "bucket-kb"},
      {"nesterov", "deterministic", "overlap", "help"});
  if (f.on("help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  Config c;
  const std::int64_t kMax = std::int64_t{1} << 40;
  c.device = ga::tools::device_flag(f);
  c.dtype = f.choice("dtype", "f32", {"f32", "f16"}) == "f16" ? ga::DType::f16 : ga::DType::f32;
  c.in = f.integer("in", c.in, 1, 1 << 20);
  c.hidden = f.integer("hidden", c.hidden, 1, 1 << 20);
  c.out = f.integer("out", c.out, 1, 1 << 20);
  c.batch = f.integer("batch", c.batch, 1, kMax);
  if (f.has("accum") && f.has("micro-batch")) {
    throw FlagError("give --accum or --micro-batch, not both");
  }
  c.accum = f.integer("accum", 1, 1, kMax);
  c.micro = f.integer("micro-batch", 0, 1, kMax);
  c.dist_timeout = f.number("dist-timeout", c.dist_timeout, 0, 1e9);
  c.steps = f.integer("steps", c.steps, 1, kMax);
  if (c.steps > kMax / c.batch) {
    throw FlagError("--steps " + std::to_string(c.steps) + " x --batch " + std::to_string(c.batch) +
                    " rows is too many (expected at most " + std::to_string(kMax) + " rows)");
  }
  c.print_every = f.integer("print-every", c.print_every, 0, kMax);
  c.lr = f.number("lr", c.lr, 0, 1e6);
  c.momentum = f.number("momentum", c.momentum, 0, 1);
  c.weight_decay = f.number("weight-decay", c.weight_decay, 0, 1e6);
  c.dampening = f.number("dampening", c.dampening, 0, 1);
  c.nesterov = f.on("nesterov");
  c.reduction = f.choice("reduction", "mean", {"mean", "sum"}) == "sum" ? ga::Reduction::Sum
                                                                        : ga::Reduction::Mean;
  c.window.normalization(f.choice("normalize", "window", {"window", "micro-batch"}) == "window"
                             ? ga::optim::Normalization::Window
                             : ga::optim::Normalization::MicroBatch);
  const std::string accum_mode = f.choice("accum-mode", "naive", {"naive", "kahan", "exact"});
  c.window.compensation(accum_mode == "kahan"   ? ga::optim::Compensation::Kahan
                        : accum_mode == "exact" ? ga::optim::Compensation::Exact
                                                : ga::optim::Compensation::None);
  const std::string scale = f.str("loss-scale", "none");
  if (scale == "dynamic") {
    c.window.loss_scaling(ga::optim::LossScaling::dynamic());
  } else if (scale != "none") {
    c.window.loss_scaling(
        ga::optim::LossScaling::fixed(static_cast<float>(f.number("loss-scale", 1, 1e-30, 1e30))));
  }
  c.window.overflow(f.choice("overflow", "skip-step", {"skip-step", "drop-micro-batch"}) ==
                            "skip-step"
                        ? ga::optim::OverflowPolicy::SkipStep
                        : ga::optim::OverflowPolicy::DropMicroBatch);
  c.deterministic = f.on("deterministic");
  const std::string gemm = f.choice("gemm", "auto", {"auto", "handwritten", "vendor"});
  c.gemm.backend = gemm == "auto"          ? ga::GemmBackend::Auto
                   : gemm == "handwritten" ? ga::GemmBackend::Handwritten
                                           : ga::GemmBackend::Vendor;
  c.gemm.deterministic = c.deterministic;
  if (c.deterministic && c.gemm.backend == ga::GemmBackend::Vendor) {
    throw FlagError("--deterministic needs gradaccum's own kernels, not --gemm vendor");
  }
  const std::string graph = f.choice("graph", "auto", {"auto", "on", "off"});
  if (graph == "on" && c.device != ga::Device::CUDA) {
    throw FlagError(
        "--graph on needs the CUDA device (CUDA graphs replay device work; the CPU runs op by "
        "op): use --device cuda, or --graph auto|off");
  }
  c.graph = graph == "on" || (graph == "auto" && c.device == ga::Device::CUDA);
  if (f.on("overlap")) {
    if (c.device != ga::Device::CPU || accum_mode != "naive" ||
        c.window.overflow() != ga::optim::OverflowPolicy::SkipStep) {
      throw FlagError(
          "--overlap needs --device cpu, --accum-mode naive and --overflow skip-step (where a "
          "gradient is final as soon as the backward has written it)");
    }
    c.window.overlap(true).bucket_bytes(
        static_cast<std::size_t>(f.integer("bucket-kb", 1024, 1, std::int64_t{1} << 30)) << 10);
  } else if (f.has("bucket-kb")) {
    throw FlagError("--bucket-kb goes with --overlap");
  }
  c.seed = static_cast<std::uint64_t>(f.integer("seed", 0, 0, INT64_MAX));
  c.data = f.str("data", "");
  c.targets = f.str("targets", "");
  if (c.data.empty() != c.targets.empty()) throw FlagError("--data and --targets go together");
  c.load_dir = f.str("load-weights", "");
  c.save_dir = f.str("save-weights", "");
  return c;
}

ga::nn::Sequential make_mlp(std::int64_t in, std::int64_t hidden, std::int64_t out,
                            std::uint64_t seed) {
  return ga::nn::Sequential(
      {{"fc1", ga::nn::Linear(ga::nn::LinearOptions(in, hidden).seed(seed))},
       {"relu", ga::nn::ReLU()},
       {"fc2", ga::nn::Linear(ga::nn::LinearOptions(hidden, out).seed(seed + 1))}});
}

// The training data: from .npy files, or a synthetic regression task y = teacher(x).
void load_data(const Config& c, std::int64_t rows, ga::Tensor& x, ga::Tensor& y) {
  if (!c.data.empty()) {
    x = ga::load_npy(c.data);
    y = ga::load_npy(c.targets);
    GA_CHECK(x.rank() == 2 && x.size(1) == c.in, "--data " << c.data << ": expected shape [rows, "
                                                           << c.in << "], got " << x.shape().str());
    GA_CHECK(y.rank() == 2 && y.size(1) == c.out, "--targets "
                                                      << c.targets << ": expected shape [rows, "
                                                      << c.out << "], got " << y.shape().str());
    GA_CHECK(x.size(0) == y.size(0),
             "--data has " << x.size(0) << " rows but --targets has " << y.size(0));
    GA_CHECK(x.size(0) >= rows, "--steps " << c.steps << " x --batch " << c.batch << " needs "
                                           << rows << " rows; the data has " << x.size(0));
    for (float v : x.to_vector())
      GA_CHECK(std::isfinite(v), "--data contains non-finite values");
    for (float v : y.to_vector()) {
      GA_CHECK(std::isfinite(v), "--targets contains non-finite values");
    }
    x = x.to(c.dtype);
    y = y.to(c.dtype);
    return;
  }
  x = ga::uniform({rows, c.in}, -1.0f, 1.0f, c.seed * 7919 + 17, c.dtype);
  ga::nn::Sequential teacher = make_mlp(c.in, c.hidden, c.out, c.seed + 1000003);
  teacher.to(c.dtype);
  ga::autograd::NoGradGuard no_grad;
  // In slices: the teacher's hidden activations for every row at once would need
  // rows x hidden floats (40 GB for 10,000 steps of B = 1024 and hidden 1024).
  constexpr std::int64_t kSlice = 4096;
  y = ga::Tensor::empty({rows, c.out}, c.dtype);
  const std::size_t row_bytes = static_cast<std::size_t>(c.out) * ga::dtype_size(c.dtype);
  for (std::int64_t r0 = 0; r0 < rows; r0 += kSlice) {
    const std::int64_t r1 = std::min(rows, r0 + kSlice);
    const ga::autograd::Variable t = teacher.forward(ga::autograd::Variable(x.rows(r0, r1)));
    std::memcpy(static_cast<char*>(y.raw_data()) + static_cast<std::size_t>(r0) * row_bytes,
                t.value().raw_data(), static_cast<std::size_t>(r1 - r0) * row_bytes);
  }
}

int run(const Config& c, const ga::tools::World& world) {
  // This rank's share of every step's rows, split into its micro-batches.
  const int n = world.size;
  std::int64_t fewest_rows = c.batch, most_rows = 0;
  std::size_t fewest_mb = SIZE_MAX, most_mb = 0;
  for (int r = 0; r < n; ++r) {
    const Share sh = share_of(c.batch, n, r);
    const std::size_t k = split_share(sh.rows, c.accum, c.micro).size();
    fewest_rows = std::min(fewest_rows, sh.rows);
    most_rows = std::max(most_rows, sh.rows);
    fewest_mb = std::min(fewest_mb, k);
    most_mb = std::max(most_mb, k);
  }
  if (c.micro == 0 && c.accum > most_rows) {
    throw FlagError(
        n == 1 ? "--accum " + std::to_string(c.accum) + " exceeds --batch " +
                     std::to_string(c.batch) + " (each micro-batch needs at least one sample)"
               : "--accum " + std::to_string(c.accum) + " exceeds the rows per rank (--batch " +
                     std::to_string(c.batch) + " over " + std::to_string(n) + " ranks: at most " +
                     std::to_string(most_rows) + "; each micro-batch needs at least one sample)");
  }
  const Share mine = share_of(c.batch, n, world.rank);
  const std::vector<std::int64_t> micro_sizes = split_share(mine.rows, c.accum, c.micro);

  const std::int64_t rows = c.steps * c.batch;
  ga::Tensor x, y;
  load_data(c, rows, x, y);

  ga::nn::Sequential model = make_mlp(c.in, c.hidden, c.out, c.seed);
  if (!c.load_dir.empty()) model.load(c.load_dir);
  model.to(c.dtype);
  model.to(c.device);
  model.set_gemm_config(c.gemm);
  ga::nn::L1Loss loss_fn(c.reduction);
  ga::optim::WindowOptions window_options = c.window;
  window_options.process_group(world.group);  // null for world 1
  ga::optim::AccumulationWindow window(model.parameters(), window_options);
  ga::optim::SGD opt(model.parameters(), ga::optim::SGDOptions(c.lr)
                                             .momentum(c.momentum)
                                             .dampening(c.dampening)
                                             .weight_decay(c.weight_decay)
                                             .nesterov(c.nesterov));

  // One captured micro-step per distinct micro-batch size (an uneven last one gets its own).
  const ga::optim::MicroStepGraph::StepFn micro_step = [&](const ga::autograd::Variable& xb,
                                                           const ga::autograd::Variable& yb) {
    return loss_fn(model.forward(xb), yb);
  };
  std::map<std::int64_t, std::unique_ptr<ga::optim::MicroStepGraph>> graphs;
  if (c.graph) {
    for (std::int64_t m : micro_sizes) {
      if (graphs.count(m) == 0) {
        graphs[m] = std::make_unique<ga::optim::MicroStepGraph>(
            window, micro_step, ga::Shape{m, c.in}, ga::Shape{m, c.out}, c.dtype);
      }
    }
  }

  const bool out = world.root();  // only rank 0 prints and saves
  // No progress line under mpirun: its forwarded output is a terminal, but not one to redraw.
  const bool tty = out && n == 1 && isatty(STDOUT_FILENO) != 0;
  const std::string world_text =
      "world " + std::to_string(n) + ", rows per rank " + range(fewest_rows, most_rows) +
      ", micro-batches per rank " +
      range(static_cast<std::int64_t>(fewest_mb), static_cast<std::int64_t>(most_mb));
  if (out) {
    std::printf(
        "gradaccum-train: %s %s, MLP %lld-%lld-%lld, batch %lld, %s, %lld steps, L1 %s, "
        "normalize %s, graph %s\n",
        ga::device_name(c.device), ga::dtype_name(c.dtype), static_cast<long long>(c.in),
        static_cast<long long>(c.hidden), static_cast<long long>(c.out),
        static_cast<long long>(c.batch), world_text.c_str(), static_cast<long long>(c.steps),
        ga::reduction_name(c.reduction), ga::optim::normalization_name(c.window.normalization()),
        c.graph ? "on" : "off");
    std::fflush(stdout);
  }

  // The timing leaves out the first step (allocations, BLAS and device warm-up).
  auto t0 = std::chrono::steady_clock::now();
  std::int64_t timed_steps = c.steps;
  double reduce_seconds = 0;
  ga::optim::StepReport last;
  std::int64_t skipped = 0, dropped = 0;
  for (std::int64_t s = 0; s < c.steps; ++s) {
    window.zero_grad();
    std::int64_t row = s * c.batch + mine.first;
    for (std::size_t i = 0; i < micro_sizes.size(); ++i) {
      const std::int64_t m = micro_sizes[i];
      if (c.graph) {
        graphs.at(m)->run(x.rows(row, row + m), y.rows(row, row + m));
      } else {
        ga::autograd::Variable xb(x.rows(row, row + m).to(c.device));
        ga::autograd::Variable yb(y.rows(row, row + m).to(c.device));
        ga::autograd::Variable loss = loss_fn(model.forward(xb), yb);
        if (i + 1 == micro_sizes.size()) {
          window.backward_last(loss);  // with --overlap, the buckets start during it
        } else {
          window.backward(loss);
        }
      }
      row += m;
    }
    if (s == 0 && c.graph && out) {
      for (const auto& [m, g] : graphs) {
        if (g->captured()) {
          std::printf("graph: micro-batch of %lld rows captured, %zu kernels per micro-step\n",
                      static_cast<long long>(m), g->kernels_per_micro_step());
        } else {
          std::printf("graph: micro-batch of %lld rows not captured (%s)\n",
                      static_cast<long long>(m), g->fallback_reason().c_str());
        }
      }
    }
    last = opt.step(window);
    skipped += last.applied ? 0 : 1;
    dropped += last.micro_batches_dropped;
    if (s == 0 && c.steps > 1) {
      if (c.device == ga::Device::CUDA) ga::cuda_synchronize();
      t0 = std::chrono::steady_clock::now();
      timed_steps = c.steps - 1;
    } else {
      reduce_seconds += window.last_reduction_seconds();
    }
    const bool print = out && c.print_every > 0 && ((s + 1) % c.print_every == 0 || s == 0);
    if (print) {
      if (tty) std::printf("\r\033[K");
      std::printf("step %lld  loss %.6g%s\n", static_cast<long long>(s + 1), last.loss,
                  last.applied ? "" : "  (skipped: non-finite gradients)");
    } else if (tty) {
      std::printf("\r[%lld/%lld] loss %.6g", static_cast<long long>(s + 1),
                  static_cast<long long>(c.steps), last.loss);
      std::fflush(stdout);
    }
  }
  if (c.device == ga::Device::CUDA) ga::cuda_synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tty) std::printf("\r\033[K");
  if (out && !c.save_dir.empty()) model.save(c.save_dir);
  if (out) {
    std::string reduce_text;
    if (n > 1) {
      char buf[192];
      // Overlapped: what the step still waited for, after the buckets started in the backward.
      const std::size_t buckets = window.reduction_buckets();
      const std::string in_buckets =
          buckets > 0 ? ", " + std::to_string(buckets) + " buckets overlapped" : "";
      std::snprintf(buf, sizeof buf, ", reduction %.4g ms/step (%zu bytes%s)",
                    1e3 * reduce_seconds / static_cast<double>(timed_steps), window.reduced_bytes(),
                    in_buckets.c_str());
      reduce_text = buf;
    }
    std::printf(
        "summary: %s, steps %lld, samples/s %.4g, step time %.4g ms%s, final loss %.6g, "
        "skipped steps %lld, dropped micro-batches %lld, loss scale %g\n",
        world_text.c_str(), static_cast<long long>(c.steps),
        static_cast<double>(timed_steps * c.batch) / secs,
        1e3 * secs / static_cast<double>(timed_steps), reduce_text.c_str(), last.loss,
        static_cast<long long>(skipped), static_cast<long long>(dropped), last.loss_scale);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  return ga::tools::run_in_world(
      "gradaccum-train",
      [&] {
        c = parse(argc, argv);
        return c.dist_timeout;
      },
      [&](const ga::tools::World& world) { return run(c, world); });
}
