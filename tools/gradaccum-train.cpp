// gradaccum-train: trains Linear(in, hidden) -> ReLU -> Linear(hidden, out) with L1 loss and
// SGD or AdamW, each step one batch of B rows split in order into micro-batches accumulated in one
// window. The data (Fashion-MNIST, .npy files, or a synthetic task) are visited in epochs; the run
// can be evaluated, checkpointed, stopped by a signal at a step boundary and resumed to the same
// bytes. Under mpirun -np N, the N processes share each batch (data parallelism: tools/world.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "autograd/nn.h"
#include "core/cuda_device.h"
#include "data/epoch_order.h"
#include "flags.h"
#include "gnuplot.h"
#include "optim/optim.h"
#include "stop_signals.h"
#include "train_checkpoint.h"
#include "train_config.h"
#include "train_data.h"
#include "train_report.h"
#include "world.h"

namespace ga = gradaccum;
using ga::tools::FlagError;
using ga::tools::TrainConfig;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Rank r's share of a batch of n rows over N ranks: [first, first + rows).
struct Share {
  std::int64_t first = 0, rows = 0;
};
Share share_of(std::int64_t n, int ranks, int r) {
  const std::int64_t base = n / ranks, extra = n % ranks;
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

std::unique_ptr<ga::tools::TrainData> training_data(const TrainConfig& c) {
  if (c.dataset == "fashion-mnist") return ga::tools::fashion_mnist_data(false);
  if (!c.data.empty()) {
    return ga::tools::npy_data(c.data, c.targets, c.in, c.out, "--data", "--targets");
  }
  return ga::tools::synthetic_data(c.in, c.hidden, c.out, c.seed);
}

std::unique_ptr<ga::tools::TrainData> eval_data(const TrainConfig& c) {
  if (c.dataset == "fashion-mnist") return ga::tools::fashion_mnist_data(true);
  if (!c.eval_data.empty()) {
    return ga::tools::npy_data(c.eval_data, c.eval_targets, c.in, c.out, "--eval-data",
                               "--eval-targets");
  }
  return nullptr;
}

// Whether any rank was sent SIGINT or SIGTERM (which one: the largest number), agreed by all
// ranks after each step so that they stop at the same one.
int agreed_stop_signal(const ga::tools::World& world) {
  const int mine = ga::tools::stop_signal();
  if (!world.group) return mine;
  const auto byte = static_cast<unsigned char>(mine);
  std::vector<unsigned char> all(static_cast<std::size_t>(world.size));
  world.group->allgather(&byte, 1, all.data());
  return *std::max_element(all.begin(), all.end());
}

int run(const TrainConfig& c, const ga::tools::World& world) {
  const int n = world.size;
  const bool out = world.root();  // only rank 0 prints and writes files
  ga::tools::catch_stop_signals();

  // ---- data and its order ----
  const std::unique_ptr<ga::tools::TrainData> train = training_data(c);
  // Only rank 0 evaluates (and so reads the held-out set).
  const std::unique_ptr<ga::tools::TrainData> held_out = out ? eval_data(c) : nullptr;
  std::optional<ga::data::EpochOrder> order;
  if (train->rows() > 0) {
    if (c.drop_last && train->rows() < c.batch) {
      throw FlagError("--drop-last with --batch " + std::to_string(c.batch) + " over " +
                      std::to_string(train->rows()) +
                      " rows leaves no batch: expected a batch of at most the data's rows");
    }
    order.emplace(ga::data::EpochOrderOptions(train->rows(), std::min(c.batch, train->rows()))
                      .shuffle(c.shuffle, c.seed)
                      .drop_last(c.drop_last));
  }
  const std::int64_t total_steps = c.epochs > 0 ? c.epochs * order->batches_per_epoch() : c.steps;

  // The micro-batch counts per rank of a full batch (the header, and --accum's check).
  const std::int64_t full_batch = order ? std::min(c.batch, train->rows()) : c.batch;
  std::int64_t fewest_rows = full_batch, most_rows = 0, fewest_mb = INT64_MAX, most_mb = 0;
  for (int r = 0; r < n; ++r) {
    const Share sh = share_of(full_batch, n, r);
    const auto k = static_cast<std::int64_t>(split_share(sh.rows, c.accum, c.micro).size());
    fewest_rows = std::min(fewest_rows, sh.rows);
    most_rows = std::max(most_rows, sh.rows);
    fewest_mb = std::min(fewest_mb, k);
    most_mb = std::max(most_mb, k);
  }
  if (c.micro == 0 && c.accum > most_rows) {
    throw FlagError(
        n == 1
            ? "--accum " + std::to_string(c.accum) + " exceeds --batch " +
                  std::to_string(full_batch) + " (each micro-batch needs at least one sample)"
            : "--accum " + std::to_string(c.accum) + " exceeds the rows per rank (--batch " +
                  std::to_string(full_batch) + " over " + std::to_string(n) + " ranks: at most " +
                  std::to_string(most_rows) + "; each micro-batch needs at least one sample)");
  }

  // ---- where the run starts: a checkpoint, or step 0 ----
  std::optional<ga::tools::Checkpoint> resumed;
  ga::tools::RunPosition pos;
  pos.world = n;
  if (!c.resume_dir.empty()) {
    resumed = ga::tools::load_checkpoint(c.resume_dir, c.arithmetic());
    pos = resumed->position;
    pos.world = n;
    if (pos.step >= total_steps) {
      throw FlagError("--resume " + c.resume_dir + ": the checkpoint is at step " +
                      std::to_string(pos.step) + " already, and this run ends at step " +
                      std::to_string(total_steps) + " (expected a larger --steps or --epochs)");
    }
    if (order) order->seek({pos.epoch, pos.batch});
  }
  if (!c.checkpoint_dir.empty() && out) ga::tools::prepare_checkpoint_dir(c.checkpoint_dir);

  // ---- model, window, optimizer ----
  ga::nn::Sequential model =
      ga::tools::make_mlp(c.in, c.hidden, c.out, c.seed, c.batch_norm != "none");
  if (!c.load_dir.empty()) model.load(c.load_dir);
  model.to(c.dtype);
  if (resumed) ga::tools::restore_model(*resumed, model);
  model.to(c.device);
  model.set_gemm_config(c.gemm);
  ga::nn::L1Loss loss_fn(c.reduction);
  ga::optim::WindowOptions window_options = c.window;
  window_options.process_group(world.group);  // null for world 1
  ga::optim::AccumulationWindow window(model.parameters(), window_options);
  std::unique_ptr<ga::optim::Optimizer> optimizer =
      ga::tools::make_optimizer(c, model.parameters());
  ga::optim::Optimizer& opt = *optimizer;
  if (resumed) ga::tools::restore_training(*resumed, opt, window);
  // --batch-norm window: the window's micro-batches are kept and replayed at the step.
  std::unique_ptr<ga::optim::BatchNormReplay> replay;
  if (c.batch_norm == "window") {
    replay = std::make_unique<ga::optim::BatchNormReplay>(
        window, model, [&](const ga::autograd::Variable& p, const ga::autograd::Variable& t) {
          return loss_fn(p, t);
        });
  }
  resumed.reset();  // the state's host copies are no longer needed

  // One captured micro-step per distinct micro-batch size, made when a size first appears.
  const ga::optim::MicroStepGraph::StepFn micro_step = [&](const ga::autograd::Variable& xb,
                                                           const ga::autograd::Variable& yb) {
    return loss_fn(model.forward(xb), yb);
  };
  std::map<std::int64_t, std::unique_ptr<ga::optim::MicroStepGraph>> graphs;
  auto graph_for = [&](std::int64_t m) -> ga::optim::MicroStepGraph& {
    auto& g = graphs[m];
    if (!g) {
      g = std::make_unique<ga::optim::MicroStepGraph>(window, micro_step, ga::Shape{m, c.in},
                                                      ga::Shape{m, c.out}, c.dtype);
    }
    return *g;
  };
  auto report_graph = [&](std::int64_t m) {
    const ga::optim::MicroStepGraph& g = *graphs.at(m);
    if (g.captured()) {
      std::printf("graph: micro-batch of %lld rows captured, %zu kernels per micro-step\n",
                  static_cast<long long>(m), g.kernels_per_micro_step());
    } else {
      std::printf("graph: micro-batch of %lld rows not captured (%s)\n", static_cast<long long>(m),
                  g.fallback_reason().c_str());
    }
  };

  // ---- outputs ----
  std::unique_ptr<ga::tools::StepCsv> csv;
  std::string plot_dir;
  if (out && (!c.log_csv.empty() || !c.plot.empty())) {
    std::string path = c.log_csv;
    if (path.empty()) {
      plot_dir = ga::tools::make_plot_dir("gradaccum-train", "--plot");
      path = plot_dir + "/steps.csv";
    }
    csv = std::make_unique<ga::tools::StepCsv>(path, c.log_csv.empty() ? "--plot" : "--log-csv",
                                               pos.step);
  }
  // No progress line under mpirun: its forwarded output is a terminal, but not one to redraw.
  const bool tty = out && n == 1 && isatty(STDOUT_FILENO) != 0;
  const std::string world_text = "world " + std::to_string(n) + ", rows per rank " +
                                 range(fewest_rows, most_rows) + ", micro-batches per rank " +
                                 range(fewest_mb, most_mb);
  if (out) {
    std::string data_text = "synthetic data";
    if (order) {
      data_text = (c.dataset.empty() ? c.data : c.dataset) + " (" + std::to_string(train->rows()) +
                  " rows, " + std::to_string(order->batches_per_epoch()) + " steps per epoch, " +
                  (c.shuffle ? "shuffled" : "in order") +
                  (c.drop_last ? ", short batch dropped" : "") + ")";
    }
    std::printf(
        "gradaccum-train: %s %s, MLP %lld-%lld-%lld, %s, batch %lld, %s, %lld steps, L1 %s, "
        "normalize %s, batch norm %s, %s, graph %s\n",
        ga::device_name(c.device), ga::dtype_name(c.dtype), static_cast<long long>(c.in),
        static_cast<long long>(c.hidden), static_cast<long long>(c.out), data_text.c_str(),
        static_cast<long long>(c.batch), world_text.c_str(), static_cast<long long>(total_steps),
        ga::reduction_name(c.reduction), ga::optim::normalization_name(c.window.normalization()),
        c.batch_norm.c_str(), c.optimizer == "adamw" ? "AdamW" : "SGD", c.graph ? "on" : "off");
    if (!c.resume_dir.empty()) {
      std::printf("resumed from %s at step %lld (epoch %lld, batch %lld)\n",
                  ga::tools::checkpoint_file(c.resume_dir).c_str(),
                  static_cast<long long>(pos.step), static_cast<long long>(pos.epoch),
                  static_cast<long long>(pos.batch));
    }
    std::fflush(stdout);
  }

  auto evaluate = [&]() { return ga::tools::evaluate_l1(model, *held_out, c.dtype, c.device); };
  auto checkpoint = [&]() {
    if (out) {
      ga::tools::save_checkpoint(c.checkpoint_dir, c.arithmetic(), pos, model, opt, window);
    }
    if (world.group) world.group->barrier();  // written before any rank goes on or exits
  };

  // ---- the steps ----
  // The timing leaves out this process's first step (allocations, BLAS and device warm-up),
  // making or gathering the rows, evaluations and checkpoints.
  double step_seconds = 0, reduce_seconds = 0;
  std::int64_t timed_steps = 0, timed_samples = 0;
  ga::optim::StepReport last;
  double last_eval = -1;
  int stop = 0;
  const std::int64_t first_step = pos.step;
  ga::Tensor x, y;
  while (pos.step < total_steps) {
    std::vector<std::int64_t> rows;
    if (order) {
      rows = order->next();
    } else {
      rows.resize(static_cast<std::size_t>(c.batch));
      for (std::int64_t i = 0; i < c.batch; ++i)
        rows[static_cast<std::size_t>(i)] = pos.step * c.batch + i;
    }
    const auto batch_rows = static_cast<std::int64_t>(rows.size());
    const Share mine = share_of(batch_rows, n, world.rank);
    const std::vector<std::int64_t> share(rows.begin() + mine.first,
                                          rows.begin() + mine.first + mine.rows);
    const std::vector<std::int64_t> micro_sizes = split_share(mine.rows, c.accum, c.micro);
    if (mine.rows > 0) {
      train->gather(share, x, y);  // f32
      if (c.dtype != ga::DType::f32) {
        x = x.to(c.dtype);
        y = y.to(c.dtype);
      }
    }
    // The step's time runs from its rows in host memory (made or gathered above, as a data
    // loader would have them ready) to its end, as the PyTorch side by side times it.
    const Clock::time_point t0 = Clock::now();
    window.zero_grad();
    std::int64_t row = 0;
    for (std::size_t i = 0; i < micro_sizes.size(); ++i) {
      const std::int64_t m = micro_sizes[i];
      if (replay) {
        replay->submit(x.rows(row, row + m).to(c.device), y.rows(row, row + m).to(c.device));
      } else if (c.graph) {
        const bool is_new = graphs.count(m) == 0;
        graph_for(m).run(x.rows(row, row + m), y.rows(row, row + m));
        if (is_new && out) report_graph(m);
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
    if (replay) replay->backward();
    last = opt.step(window);  // one host synchronisation: the step is done on the device too
    const double secs = seconds_since(t0);
    ++pos.step;
    if (order) {
      const ga::data::EpochOrder::Position p = order->position();
      pos.epoch = p.epoch;
      pos.batch = p.batch;
    }
    pos.skipped += last.applied ? 0 : 1;
    pos.dropped += last.micro_batches_dropped;
    if (pos.step > first_step + 1 || total_steps - first_step == 1) {
      step_seconds += secs;
      reduce_seconds += window.last_reduction_seconds();
      ++timed_steps;
      timed_samples += batch_rows;
    }

    const bool at_end = pos.step == total_steps;
    const bool eval_now =
        held_out && (at_end || (c.eval_every > 0 && pos.step % c.eval_every == 0));
    if (eval_now) last_eval = evaluate();
    if (csv) {
      ga::tools::StepRecord r;
      r.step = pos.step;
      r.epoch = pos.epoch;
      r.loss = last.loss;
      r.evaluated = eval_now;
      r.eval_loss = last_eval;
      r.samples_per_s = static_cast<double>(batch_rows) / secs;
      r.loss_scale = last.loss_scale;
      r.skipped = pos.skipped;
      r.dropped = pos.dropped;
      csv->add(r);
    }
    const bool print =
        out && c.print_every > 0 && (pos.step % c.print_every == 0 || pos.step == first_step + 1);
    if (print || (out && eval_now)) {
      if (tty) std::printf("\r\033[K");
      char eval_text[48] = "";
      if (eval_now) std::snprintf(eval_text, sizeof eval_text, "  eval %.6g", last_eval);
      std::printf("step %lld  loss %.6g%s%s\n", static_cast<long long>(pos.step), last.loss,
                  eval_text, last.applied ? "" : "  (skipped: non-finite gradients)");
    } else if (tty) {
      std::printf("\r[%lld/%lld] loss %.6g", static_cast<long long>(pos.step),
                  static_cast<long long>(total_steps), last.loss);
    }
    if (out) std::fflush(stdout);

    stop = agreed_stop_signal(world);
    const bool every = c.checkpoint_every > 0 && pos.step % c.checkpoint_every == 0;
    if (!c.checkpoint_dir.empty() && (every || at_end || stop != 0)) checkpoint();
    if (stop != 0) break;
  }
  if (c.device == ga::Device::CUDA) ga::cuda_synchronize();
  if (tty) std::printf("\r\033[K");
  if (out && !c.save_dir.empty()) model.save(c.save_dir);

  if (out) {
    if (stop != 0) {
      std::printf("stopped by %s after step %lld of %lld", ga::tools::signal_name(stop),
                  static_cast<long long>(pos.step), static_cast<long long>(total_steps));
      if (!c.checkpoint_dir.empty()) {
        std::printf("; checkpoint written to %s (continue with --resume %s)",
                    ga::tools::checkpoint_file(c.checkpoint_dir).c_str(), c.checkpoint_dir.c_str());
      }
      std::printf("\n");
    }
    std::string extra;
    char buf[256];
    if (n > 1 && timed_steps > 0) {
      // Overlapped: what the step still waited for, after the buckets started in the backward.
      const std::size_t buckets = window.reduction_buckets();
      const std::string in_buckets =
          buckets > 0 ? ", " + std::to_string(buckets) + " buckets overlapped" : "";
      std::snprintf(buf, sizeof buf, ", reduction %.4g ms/step (%zu bytes%s)",
                    1e3 * reduce_seconds / static_cast<double>(timed_steps), window.reduced_bytes(),
                    in_buckets.c_str());
      extra += buf;
    }
    if (order) {
      std::snprintf(
          buf, sizeof buf, ", epochs %.4g",
          static_cast<double>(pos.epoch) +
              static_cast<double>(pos.batch) / static_cast<double>(order->batches_per_epoch()));
      extra += buf;
    }
    if (last_eval >= 0) {
      std::snprintf(buf, sizeof buf, ", eval loss %.6g", last_eval);
      extra += buf;
    }
    const double per_step = timed_steps > 0 ? step_seconds / static_cast<double>(timed_steps) : 0;
    std::printf(
        "summary: %s, steps %lld, samples/s %.4g, step time %.4g ms%s, final loss %.6g, "
        "skipped steps %lld, dropped micro-batches %lld, loss scale %g\n",
        world_text.c_str(), static_cast<long long>(pos.step),
        step_seconds > 0 ? static_cast<double>(timed_samples) / step_seconds : 0.0, 1e3 * per_step,
        extra.c_str(), last.loss, static_cast<long long>(pos.skipped),
        static_cast<long long>(pos.dropped), last.loss_scale);
    if (c.dataset == "fashion-mnist" && last_eval >= 0) {
      std::printf(
          "test reconstruction L1: %.6g (mean |pixel - reconstruction| over the %lld "
          "test images, pixels in [0, 1])\n",
          last_eval, static_cast<long long>(held_out->rows()));
    }
    if (!c.save_dir.empty()) std::printf("weights saved to %s\n", c.save_dir.c_str());
    std::fflush(stdout);
    if (!c.plot.empty()) {
      ga::tools::plot_losses(
          csv->path(), c.plot,
          "gradaccum-train: " +
              (c.dataset.empty() ? std::string("L1 loss") : c.dataset + " autoencoder"));
      std::printf("loss curves written to %s\n", c.plot.c_str());
    }
    if (!c.reconstructions.empty() && stop == 0) {
      constexpr std::int64_t kImages = 10;
      std::vector<std::int64_t> first(static_cast<std::size_t>(kImages));
      for (std::int64_t i = 0; i < kImages; ++i)
        first[static_cast<std::size_t>(i)] = i;
      ga::Tensor images, targets;
      held_out->gather(first, images, targets);
      ga::autograd::NoGradGuard no_grad;
      const ga::autograd::Variable recon =
          model.forward(ga::autograd::Variable(images.to(c.dtype).to(c.device)));
      ga::tools::write_reconstructions(c.reconstructions, images, recon.value());
      std::printf("reconstructions written to %s\n", c.reconstructions.c_str());
    }
    std::fflush(stdout);
  }
  if (!plot_dir.empty()) {
    csv.reset();
    std::remove((plot_dir + "/steps.csv").c_str());
    std::remove(plot_dir.c_str());
  }
  return stop != 0 ? 128 + stop : 0;
}

}  // namespace

int main(int argc, char** argv) {
  TrainConfig c;
  return ga::tools::run_in_world(
      "gradaccum-train",
      [&] {
        c = ga::tools::parse_train_flags(argc, argv);
        return c.dist_timeout;
      },
      [&](const ga::tools::World& world) { return run(c, world); });
}
