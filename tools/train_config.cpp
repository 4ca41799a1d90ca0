#include "train_config.h"

#include <cstdio>
#include <cstdlib>

#include "core/cuda_device.h"
#include "core/state_dict.h"
#include "data/fashion_mnist.h"
#include "flags.h"
#include "gnuplot.h"

namespace gradaccum::tools {
namespace {

const char* kUsage = R"(usage: gradaccum-train [flags]

Trains Linear(in, hidden) -> ReLU -> Linear(hidden, out) (with --batch-norm, Linear ->
BatchNorm1d -> ReLU -> Linear) with L1 loss and SGD or AdamW. Each optimizer
step takes the next batch of B rows and splits it, in order, into micro-batches whose gradients
are accumulated into one step (divided once by the true count). The data are visited in epochs,
in file order or shuffled; without data, a synthetic regression task makes each step's rows.

Under mpirun -np N (data parallelism over MPI), B is the global batch: rank r takes a contiguous
share of each batch (as even as possible), splits it with --accum or --micro-batch, and the
step reduces every rank's window once. Only rank 0 prints and writes files.

Data
  --dataset fashion-mnist     an L1 autoencoder (784 -> hidden -> 784) on Fashion-MNIST's 60,000
                              training images, pixels in [0, 1]; evaluates on its 10,000 test
                              images (Debian's dataset-fashion-mnist; the folder can be set with
                              GRADACCUM_FASHION_MNIST_DIR)
  --data X.npy --targets Y.npy
                              training rows [rows, in] and targets [rows, out]; with neither
                              --dataset nor --data, a synthetic task y = teacher(x) (a fixed
                              random network), its rows made as each step needs them
  --eval-data X.npy --eval-targets Y.npy
                              a held-out set for --data (Fashion-MNIST brings its test split)
  --epochs E | --steps S      how long: E passes over the data, or S optimizer steps in all
                              (a resumed run counts the steps before it)             [100 steps]
  --shuffle                   shuffle every epoch (a permutation from --seed and the epoch);
                              without it, file order
  --drop-last                 leave out an epoch's last batch when it is short; without it
                              (the default, like PyTorch's DataLoader) it is a smaller step
Model and step
  --device auto|cpu|cuda      where to train (auto: cuda when a device is present)    [auto]
  --dtype f32|f16             model dtype; gradients and master weights are always f32  [f32]
  --in N --hidden N --out N   layer sizes (Fashion-MNIST: in = out = 784)         [32 128 8]
  --batch B                   samples per optimizer step (all ranks together)           [256]
  --accum K                   micro-batches per step and rank (sizes as even as possible)  [1]
  --micro-batch M             or: micro-batches of M rows (the last one may be smaller)
  --batch-norm none|micro-batch|window
                              a BatchNorm1d after the first layer. micro-batch: each micro-
                              batch normalised with its own statistics and the running ones
                              updated per micro-batch (ghost batch norm, what every framework
                              does); window: the window's statistics, the big batch's step
                              (replays the micro-batches: docs/batch_norm.md; one process,
                              skip-step)                                                  [none]
  --optimizer sgd|adamw       PyTorch's SGD or AdamW; either divides the window's sums by the
                              true count inside its fused update                          [sgd]
  --lr X --weight-decay X     learning rate and weight decay (AdamW's decoupled)
                              [sgd: 0.05 0; adamw: 0.001 0.01, PyTorch's defaults]
  --momentum X --dampening X --nesterov
                              SGD's                                                [0.9 0 off]
  --beta1 X --beta2 X --eps X --amsgrad
                              AdamW's                                      [0.9 0.999 1e-8 off]
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
  --seed N                    initialisation, shuffling and synthetic data seed            [0]
Evaluation, checkpoints, output
  --eval-every N              the held-out loss (no gradients) every N steps, and at the end
                              (0: at the end only)                                        [0]
  --checkpoint DIR            write DIR/checkpoint.state at the end, every --checkpoint-every N
                              steps, and when stopped by SIGINT or SIGTERM: parameters, master
                              weights, momentum, loss scaler, step, data position, flags.
                              Written atomically: a crash leaves the previous one whole
  --resume DIR                continue the run DIR/checkpoint.state holds, to the same bytes
                              as a run never stopped; refused when the flags that decide the
                              arithmetic differ from the checkpoint's
  --load-weights DIR --save-weights DIR
                              fc1.weight.npy, fc1.bias.npy, fc2.weight.npy, fc2.bias.npy
                              (with --batch-norm also bn.weight.npy, bn.bias.npy,
                              bn.running_mean.npy, bn.running_var.npy)
                              (saved after the last complete step, also when stopped)
  --print-every N             a step line every N steps (0: only the summary); a progress
                              line on a terminal                                          [10]
  --log-csv FILE              one line per step: step, epoch, loss, eval loss, samples/s,
                              loss scale, skipped and dropped so far
  --plot FILE.png             the training and evaluation loss curves (gnuplot)
  --reconstructions FILE.png  Fashion-MNIST: test images above their reconstructions (gnuplot)
Several processes
  --dist-timeout S            under mpirun: a step's reduction that waits longer than S
                              seconds for the other ranks ends the run (0: wait forever)   [300]
  --overlap [--bucket-kb N]   under mpirun: reduce the gradients in buckets of N KiB, each
                              started during the last micro-batch's backward (CPU, naive,
                              skip-step; measured no faster on 2 cores: docs/distributed.md)
                                                                                        [1024]
SIGINT or SIGTERM ends the run after the current optimizer step (never inside a window): the
checkpoint and --save-weights are written, and the exit status is 130 or 143. A second signal
ends it at once.
  --help
)";

}  // namespace

std::vector<std::pair<std::string, std::string>> TrainConfig::arithmetic() const {
  const optim::LossScaling& ls = window.loss_scaling();
  std::string scale = ls.kind == optim::LossScaling::Kind::None      ? "none"
                      : ls.kind == optim::LossScaling::Kind::Dynamic ? "dynamic"
                                                                     : exact_decimal(ls.init_scale);
  std::string source =
      dataset.empty() ? (data.empty() ? "synthetic" : data + " " + targets) : dataset;
  std::vector<std::pair<std::string, std::string>> a = {
      {"data", source},
      {"dtype", dtype_name(dtype)},
      {"in", std::to_string(in)},
      {"hidden", std::to_string(hidden)},
      {"out", std::to_string(out)},
      {"batch", std::to_string(batch)},
      {"shuffle", shuffle ? "on" : "off"},
      {"drop-last", drop_last ? "on" : "off"},
      {"seed", std::to_string(seed)},
      {"lr", exact_decimal(lr)},
      {"momentum", exact_decimal(momentum)},
      {"weight-decay", exact_decimal(weight_decay)},
      {"dampening", exact_decimal(dampening)},
      {"nesterov", nesterov ? "on" : "off"},
      {"reduction", reduction_name(reduction)},
      {"normalize", optim::normalization_name(window.normalization())},
      {"accum-mode", optim::compensation_name(window.compensation())},
      {"loss-scale", scale},
      {"overflow", optim::overflow_policy_name(window.overflow())},
      {"deterministic", deterministic ? "on" : "off"},
      {"gemm", gemm.backend == GemmBackend::Auto          ? "auto"
               : gemm.backend == GemmBackend::Handwritten ? "handwritten"
                                                          : "vendor"},
  };
  if (optimizer != "sgd") {
    a.emplace_back("optimizer", optimizer);
    a.emplace_back("beta1", exact_decimal(beta1));
    a.emplace_back("beta2", exact_decimal(beta2));
    a.emplace_back("eps", exact_decimal(eps));
    a.emplace_back("amsgrad", amsgrad ? "on" : "off");
  }
  if (batch_norm != "none") a.emplace_back("batch-norm", batch_norm);
  // The split decides the arithmetic only when each micro-batch is normalised on its own.
  if (window.normalization() == optim::Normalization::MicroBatch || batch_norm == "micro-batch") {
    a.emplace_back("split", micro > 0 ? "micro-batch " + std::to_string(micro)
                                      : "accum " + std::to_string(accum));
  }
  return a;
}

TrainConfig parse_train_flags(int argc, char** argv) {
  const Flags f(
      argc, argv,
      {"device",
       "dtype",
       "in",
       "hidden",
       "out",
       "batch",
       "accum",
       "micro-batch",
       "steps",
       "epochs",
       "lr",
       "momentum",
       "weight-decay",
       "dampening",
       "reduction",
       "normalize",
       "accum-mode",
       "loss-scale",
       "overflow",
       "gemm",
       "seed",
       "dataset",
       "data",
       "targets",
       "eval-data",
       "eval-targets",
       "eval-every",
       "load-weights",
       "save-weights",
       "checkpoint",
       "checkpoint-every",
       "resume",
       "log-csv",
       "plot",
       "reconstructions",
       "print-every",
       "graph",
       "dist-timeout",
       "bucket-kb",
       "batch-norm",
       "optimizer",
       "beta1",
       "beta2",
       "eps"},
      {"amsgrad", "nesterov", "deterministic", "overlap", "shuffle", "drop-last", "help"});
  if (f.on("help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  TrainConfig c;
  const std::int64_t kMax = std::int64_t{1} << 40;
  c.device = device_flag(f);
  c.dtype = f.choice("dtype", "f32", {"f32", "f16"}) == "f16" ? DType::f16 : DType::f32;

  c.dataset = f.str("dataset", "");
  if (!c.dataset.empty() && c.dataset != "fashion-mnist") {
    throw FlagError("--dataset = '" + c.dataset + "' is not one of fashion-mnist");
  }
  c.data = f.str("data", "");
  c.targets = f.str("targets", "");
  if (c.data.empty() != c.targets.empty()) throw FlagError("--data and --targets go together");
  c.eval_data = f.str("eval-data", "");
  c.eval_targets = f.str("eval-targets", "");
  if (c.eval_data.empty() != c.eval_targets.empty()) {
    throw FlagError("--eval-data and --eval-targets go together");
  }
  if (!c.dataset.empty() && (!c.data.empty() || !c.eval_data.empty())) {
    throw FlagError(
        "--dataset brings its own data: give --dataset or --data/--eval-data, not both");
  }
  if (!c.eval_data.empty() && c.data.empty()) {
    throw FlagError("--eval-data goes with --data (the synthetic task has no held-out set)");
  }
  const std::int64_t width = c.dataset.empty() ? 0 : data::kFashionMnistPixels;
  if (width > 0) {
    for (const char* flag : {"in", "out"}) {
      if (f.has(flag) && f.integer(flag, 0, 1, 1 << 20) != width) {
        throw FlagError(std::string("--") + flag + " = " + f.str(flag, "") +
                        ": --dataset fashion-mnist is an autoencoder of 784 pixels (expected "
                        "784, or leave it out)");
      }
    }
    c.in = c.out = width;
  }
  c.in = f.integer("in", c.in, 1, 1 << 20);
  c.hidden = f.integer("hidden", c.hidden, 1, 1 << 20);
  c.out = f.integer("out", c.out, 1, 1 << 20);
  // A step's rows are made or gathered in host memory: 2^31 of them is far past what fits.
  c.batch = f.integer("batch", c.batch, 1, std::int64_t{1} << 31);
  if (f.has("accum") && f.has("micro-batch")) {
    throw FlagError("give --accum or --micro-batch, not both");
  }
  c.accum = f.integer("accum", 1, 1, kMax);
  c.micro = f.integer("micro-batch", 0, 1, kMax);
  c.dist_timeout = f.number("dist-timeout", c.dist_timeout, 0, 1e9);

  if (f.has("steps") && f.has("epochs")) throw FlagError("give --steps or --epochs, not both");
  c.epochs = f.integer("epochs", 0, 1, kMax);
  if (c.epochs > 0 && c.synthetic()) {
    throw FlagError(
        "--epochs needs data (--dataset or --data): the synthetic task has no epochs; "
        "use --steps");
  }
  c.steps = f.integer("steps", c.epochs > 0 ? 0 : 100, 1, kMax);
  c.shuffle = f.on("shuffle");
  c.drop_last = f.on("drop-last");
  if ((c.shuffle || c.drop_last) && c.synthetic()) {
    throw FlagError(std::string(c.shuffle ? "--shuffle" : "--drop-last") +
                    " needs data (--dataset or --data): the synthetic task makes new rows for "
                    "every step");
  }

  c.print_every = f.integer("print-every", c.print_every, 0, kMax);
  c.eval_every = f.integer("eval-every", 0, 0, kMax);
  if (f.has("eval-every") && !c.has_eval_set()) {
    throw FlagError(
        "--eval-every needs a held-out set: --dataset fashion-mnist, or --eval-data "
        "and --eval-targets");
  }
  c.optimizer = f.choice("optimizer", "sgd", {"sgd", "adamw"});
  const bool adamw = c.optimizer == "adamw";
  for (const char* flag : {"momentum", "dampening", "nesterov"}) {
    if (adamw && (f.has(flag) || f.on(flag))) {
      throw FlagError(std::string("--") + flag + " is SGD's; --optimizer adamw has --beta1, " +
                      "--beta2, --eps and --amsgrad");
    }
  }
  for (const char* flag : {"beta1", "beta2", "eps", "amsgrad"}) {
    if (!adamw && (f.has(flag) || f.on(flag))) {
      throw FlagError(std::string("--") + flag + " is AdamW's: add --optimizer adamw");
    }
  }
  c.lr = f.number("lr", adamw ? 1e-3 : c.lr, 0, 1e6);
  c.momentum = f.number("momentum", c.momentum, 0, 1);
  c.weight_decay = f.number("weight-decay", adamw ? 1e-2 : c.weight_decay, 0, 1e6);
  c.dampening = f.number("dampening", c.dampening, 0, 1);
  c.nesterov = f.on("nesterov");
  c.beta1 = f.number("beta1", c.beta1, 0, 0.999999);
  c.beta2 = f.number("beta2", c.beta2, 0, 0.999999);
  c.eps = f.number("eps", c.eps, 0, 1);
  c.amsgrad = f.on("amsgrad");
  c.reduction =
      f.choice("reduction", "mean", {"mean", "sum"}) == "sum" ? Reduction::Sum : Reduction::Mean;
  c.window.normalization(f.choice("normalize", "window", {"window", "micro-batch"}) == "window"
                             ? optim::Normalization::Window
                             : optim::Normalization::MicroBatch);
  const std::string accum_mode = f.choice("accum-mode", "naive", {"naive", "kahan", "exact"});
  c.window.compensation(accum_mode == "kahan"   ? optim::Compensation::Kahan
                        : accum_mode == "exact" ? optim::Compensation::Exact
                                                : optim::Compensation::None);
  const std::string scale = f.str("loss-scale", "none");
  if (scale == "dynamic") {
    c.window.loss_scaling(optim::LossScaling::dynamic());
  } else if (scale != "none") {
    c.window.loss_scaling(
        optim::LossScaling::fixed(static_cast<float>(f.number("loss-scale", 1, 1e-30, 1e30))));
  }
  c.window.overflow(f.choice("overflow", "skip-step", {"skip-step", "drop-micro-batch"}) ==
                            "skip-step"
                        ? optim::OverflowPolicy::SkipStep
                        : optim::OverflowPolicy::DropMicroBatch);
  c.deterministic = f.on("deterministic");
  const std::string gemm = f.choice("gemm", "auto", {"auto", "handwritten", "vendor"});
  c.gemm.backend = gemm == "auto"          ? GemmBackend::Auto
                   : gemm == "handwritten" ? GemmBackend::Handwritten
                                           : GemmBackend::Vendor;
  c.gemm.deterministic = c.deterministic;
  if (c.deterministic && c.gemm.backend == GemmBackend::Vendor) {
    throw FlagError("--deterministic needs gradaccum's own kernels, not --gemm vendor");
  }
  const std::string graph = f.choice("graph", "auto", {"auto", "on", "off"});
  if (graph == "on" && c.device != Device::CUDA) {
    throw FlagError(
        "--graph on needs the CUDA device (CUDA graphs replay device work; the CPU runs op by "
        "op): use --device cuda, or --graph auto|off");
  }
  c.batch_norm = f.choice("batch-norm", "none", {"none", "micro-batch", "window"});
  if (c.batch_norm != "none" && graph == "on") {
    throw FlagError(
        "--graph on does not capture --batch-norm (its statistics are computed per "
        "forward): use --graph auto|off");
  }
  if (c.batch_norm == "window" && c.window.overflow() != optim::OverflowPolicy::SkipStep) {
    throw FlagError(
        "--batch-norm window needs --overflow skip-step (dropping a micro-batch would change "
        "the window's statistics already used)");
  }
  c.graph =
      c.batch_norm == "none" && (graph == "on" || (graph == "auto" && c.device == Device::CUDA));
  if (f.on("overlap")) {
    if (c.device != Device::CPU || accum_mode != "naive" ||
        c.window.overflow() != optim::OverflowPolicy::SkipStep) {
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

  c.load_dir = f.str("load-weights", "");
  c.save_dir = f.str("save-weights", "");
  c.checkpoint_dir = f.str("checkpoint", "");
  c.resume_dir = f.str("resume", "");
  c.checkpoint_every = f.integer("checkpoint-every", 0, 1, kMax);
  if (f.has("checkpoint-every") && c.checkpoint_dir.empty()) {
    throw FlagError("--checkpoint-every goes with --checkpoint DIR");
  }
  if (!c.resume_dir.empty() && !c.load_dir.empty()) {
    throw FlagError("give --resume or --load-weights, not both (a checkpoint holds the weights)");
  }
  for (const char* flag : {"checkpoint", "resume", "load-weights", "save-weights", "log-csv",
                           "plot", "reconstructions"}) {
    if (f.has(flag) && f.str(flag, "").empty()) {
      throw FlagError(std::string("--") + flag + " needs a path, got an empty one");
    }
  }
  c.log_csv = f.str("log-csv", "");
  c.plot = f.str("plot", "");
  c.reconstructions = f.str("reconstructions", "");
  if (!c.reconstructions.empty() && c.dataset != "fashion-mnist") {
    throw FlagError(
        "--reconstructions draws Fashion-MNIST images: it needs --dataset fashion-mnist");
  }
  for (const std::string* png : {&c.plot, &c.reconstructions}) {
    const std::string flag = png == &c.plot ? "--plot" : "--reconstructions";
    if (png->empty()) continue;
    if (png->size() < 4 || png->compare(png->size() - 4, 4, ".png") != 0) {
      throw FlagError(flag + " " + *png + ": expected a file name ending in .png");
    }
    if (!on_path("gnuplot")) throw FlagError(no_gnuplot_message(flag));
  }
  return c;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& c,
                                                 std::vector<autograd::Variable> params) {
  if (c.optimizer == "adamw") {
    return std::make_unique<optim::AdamW>(std::move(params), optim::AdamWOptions(c.lr)
                                                                 .betas(c.beta1, c.beta2)
                                                                 .eps(c.eps)
                                                                 .weight_decay(c.weight_decay)
                                                                 .amsgrad(c.amsgrad));
  }
  return std::make_unique<optim::SGD>(std::move(params), optim::SGDOptions(c.lr)
                                                             .momentum(c.momentum)
                                                             .dampening(c.dampening)
                                                             .weight_decay(c.weight_decay)
                                                             .nesterov(c.nesterov));
}

}  // namespace gradaccum::tools
