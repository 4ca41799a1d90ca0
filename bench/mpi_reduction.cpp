// The data-parallel step's one reduction against the ceiling, a plain MPI_Allreduce of the same
// bytes, for k = 1, 4, 16, 64 micro-batches per rank:
//
//   mpirun -np 2 build/default/bench/bench_mpi_reduction [--hidden 1024] [--micro-batch 32]
//                                                         [--steps 20] [--device cpu|cuda]
//
// Per step: the bytes the window reduces (gradients, compensations when Kahan is on, counts,
// flags, loss), the reduction's wall time (packing, collectives and unpacking, after a barrier so
// that the ranks' skew is not counted in it) and its share of the step, and MPI_Allreduce(SUM,
// f32) of as many bytes, timed the same way. Bandwidth is reported as bus bandwidth, 2 (N-1)/N x
// bytes / time (what a ring all-reduce moves per rank), so rows are comparable across world sizes.
// Then, on the CPU, overlap: the step with one reduction at the step against the step whose
// buckets (1 MiB: two here; 4 MiB: one, started at the end of the backward) start during the last
// micro-batch's backward. Then the cost model's constants: latency (8-byte all-reduce) and
// bandwidth (64 MiB). Rank 0 prints; everything is measured, nothing predicted here
// (docs/distributed.md uses these).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "autograd/nn.h"
#include "core/cuda_device.h"
#include "core/random.h"
#include "dist/mpi.h"
#include "optim/optim.h"

namespace ga = gradaccum;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median seconds of `reps` plain all-reduces of `floats` floats (after one warm-up).
double plain_allreduce_seconds(std::size_t floats, int reps) {
  std::vector<float> send(floats, 1.0f), recv(floats);
  std::vector<double> t;
  for (int i = 0; i <= reps; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = Clock::now();
    if (MPI_Allreduce(send.data(), recv.data(), static_cast<int>(floats), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD) != MPI_SUCCESS) {
      std::fprintf(stderr, "bench_mpi_reduction: MPI_Allreduce failed\n");
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (i > 0) t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

long arg(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return std::strtol(argv[i + 1], nullptr, 10);
  }
  return fallback;
}

std::string str_arg(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return argv[i + 1];
  }
  return fallback;
}

// One configuration's steps: medians over the timed steps (after two warm-up steps).
struct Row {
  double step = 0, reduce = 0;  // seconds: the whole step, the reduction inside it
  std::size_t bytes = 0, buckets = 0;
};

struct Config {
  ga::Device device = ga::Device::CPU;
  bool kahan = false;
  int k = 1;
  std::int64_t micro = 32, in = 256, hidden = 1024, out = 256;
  std::size_t bucket_bytes = 0;  // > 0: an overlapped window
  // The ranks wait for each other after the backward, so that the reduction's time is the
  // reduction's, not the skew between ranks (2 cores, two processes).
  bool barrier_before_step = true;
};

// A configuration's model, window and data; step() runs and times one step.
class Trainer {
 public:
  Trainer(const std::shared_ptr<ga::dist::ProcessGroup>& pg, const Config& c)
      : c_(c),
        model_({{"fc1", ga::nn::Linear(ga::nn::LinearOptions(c.in, c.hidden).seed(1))},
                {"relu", ga::nn::ReLU()},
                {"fc2", ga::nn::Linear(ga::nn::LinearOptions(c.hidden, c.out).seed(2))}}),
        window_(moved(model_, c.device).parameters(), options(pg, c)),
        opt_(model_.parameters(), ga::optim::SGDOptions(0.01).momentum(0.9)) {
    for (int m = 0; m < std::min(c.k, 4); ++m) {
      const auto seed = static_cast<std::uint64_t>(pg->rank() * 100 + m);
      xs_.push_back(ga::uniform({c.micro, c.in}, -1, 1, seed).to(c.device));
      ys_.push_back(ga::uniform({c.micro, c.out}, -1, 1, seed + 50).to(c.device));
    }
  }

  void step() {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = Clock::now();
    window_.zero_grad();
    for (int m = 0; m < c_.k; ++m) {
      const std::size_t i = static_cast<std::size_t>(m) % xs_.size();
      ga::autograd::Variable loss = loss_fn_(model_(ga::autograd::Variable(xs_[i].clone())),
                                             ga::autograd::Variable(ys_[i].clone()));
      if (m + 1 == c_.k) {
        window_.backward_last(loss);
      } else {
        window_.backward(loss);
      }
    }
    if (c_.device == ga::Device::CUDA) ga::cuda_synchronize();
    if (c_.barrier_before_step) MPI_Barrier(MPI_COMM_WORLD);
    opt_.step(window_);
    if (c_.device == ga::Device::CUDA) ga::cuda_synchronize();
    if (++steps_ > 2) {  // two warm-up steps
      step_s_.push_back(seconds_since(t0));
      reduce_s_.push_back(window_.last_reduction_seconds());
    }
  }

  Row row() const {
    return {median(step_s_), median(reduce_s_), window_.reduced_bytes(),
            window_.reduction_buckets()};
  }

 private:
  static ga::nn::Sequential& moved(ga::nn::Sequential& m, ga::Device d) {
    m.to(d);
    return m;
  }
  static ga::optim::WindowOptions options(const std::shared_ptr<ga::dist::ProcessGroup>& pg,
                                          const Config& c) {
    ga::optim::WindowOptions wo = ga::optim::WindowOptions().process_group(pg).compensation(
        c.kahan ? ga::optim::Compensation::Kahan : ga::optim::Compensation::None);
    if (c.bucket_bytes > 0) wo.overlap(true).bucket_bytes(c.bucket_bytes);
    return wo;
  }

  Config c_;
  ga::nn::Sequential model_;
  ga::optim::AccumulationWindow window_;
  ga::optim::SGD opt_;
  ga::nn::L1Loss loss_fn_{ga::Reduction::Mean};
  std::vector<ga::Tensor> xs_, ys_;
  int steps_ = 0;
  std::vector<double> step_s_, reduce_s_;
};

// Several configurations' steps, interleaved one step each in turn, so that the machine's drift
// (a shared VM) falls on all of them alike.
std::vector<Row> time_interleaved(const std::shared_ptr<ga::dist::ProcessGroup>& pg,
                                  const std::vector<Config>& configs, int steps) {
  std::vector<std::unique_ptr<Trainer>> t;
  for (const Config& c : configs)
    t.push_back(std::make_unique<Trainer>(pg, c));
  for (int s = 0; s < steps + 2; ++s) {
    for (auto& x : t)
      x->step();
  }
  std::vector<Row> rows;
  for (auto& x : t)
    rows.push_back(x->row());
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  ga::dist::MpiEnvironment mpi;
  auto pg = ga::dist::mpi_world();
  const int n = pg->size();
  const bool root = pg->rank() == 0;
  const std::int64_t in = 256, out = 256, hidden = arg(argc, argv, "--hidden", 1024);
  const std::int64_t micro = arg(argc, argv, "--micro-batch", 32);
  const int steps = static_cast<int>(arg(argc, argv, "--steps", 20));
  const std::string kahan = str_arg(argc, argv, "--accum-mode", "naive");
  const ga::Device device =
      str_arg(argc, argv, "--device", "cpu") == "cuda" ? ga::Device::CUDA : ga::Device::CPU;
  if (device == ga::Device::CUDA && !ga::cuda_available()) {
    if (root) std::fprintf(stderr, "bench_mpi_reduction: --device cuda: no CUDA device\n");
    return 2;
  }
  if (root) {
    std::printf(
        "bench_mpi_reduction: world %d, %s, MLP %lld-%lld-%lld, micro-batch %lld, %s, "
        "%d steps per row, %s\n",
        n, ga::device_name(device), static_cast<long long>(in), static_cast<long long>(hidden),
        static_cast<long long>(out), static_cast<long long>(micro), kahan.c_str(), steps,
        ga::dist::MpiEnvironment::library_version().c_str());
    std::printf("%4s %12s %10s %10s %7s %10s %9s %9s %7s\n", "k", "bytes", "step ms", "reduce ms",
                "share", "plain ms", "GB/s", "plain", "ratio");
  }
  const auto config = [&](int k) {
    Config c;
    c.device = device;
    c.kahan = kahan == "kahan";
    c.k = k;
    c.micro = micro;
    c.hidden = hidden;
    return c;
  };
  for (int k : {1, 4, 16, 64}) {
    const Row r = time_interleaved(pg, {config(k)}, steps)[0];
    const double plain = plain_allreduce_seconds(r.bytes / 4, steps);
    const double bus = 2.0 * (n - 1) / n * static_cast<double>(r.bytes);
    if (root) {
      std::printf("%4d %12zu %10.3f %10.3f %6.1f%% %10.3f %9.2f %9.2f %7.2f\n", k, r.bytes,
                  1e3 * r.step, 1e3 * r.reduce, 100 * r.reduce / r.step, 1e3 * plain,
                  bus / r.reduce / 1e9, bus / plain / 1e9, plain / r.reduce);
    }
  }
  // Overlap: the same steps without the barrier before the step (which would hide what overlap
  // hides), the last micro-batch through backward_last; one reduction at the step against
  // buckets started during that backward. "exposed" is what the step still waited for.
  if (device == ga::Device::CPU && kahan != "kahan") {
    if (root) {
      std::printf("%4s %-18s %8s %10s %12s %7s\n", "k", "reduction", "buckets", "step ms",
                  "exposed ms", "vs one");
    }
    for (int k : {1, 4, 16}) {
      std::vector<Config> configs;
      for (std::size_t bucket : {std::size_t{0}, std::size_t{1} << 20, std::size_t{4} << 20}) {
        Config c = config(k);
        c.bucket_bytes = bucket;
        c.barrier_before_step = false;
        configs.push_back(c);
      }
      const std::vector<Row> rows = time_interleaved(pg, configs, steps);
      for (std::size_t i = 0; i < rows.size() && root; ++i) {
        const std::size_t bucket = configs[i].bucket_bytes;
        const std::string what =
            bucket == 0 ? "one at the step" : "buckets " + std::to_string(bucket >> 10) + " KiB";
        std::printf("%4d %-18s %8zu %10.3f %12.3f %7.3f\n", k, what.c_str(), rows[i].buckets,
                    1e3 * rows[i].step, 1e3 * rows[i].reduce, rows[i].step / rows[0].step);
      }
    }
  }
  // The cost model's constants: t(bytes) = latency * log2 N + 2 (N-1)/N * bytes / bandwidth.
  const double lat = plain_allreduce_seconds(2, 200);
  const std::size_t big = std::size_t{16} << 20;  // 64 MiB of floats
  const double tbig = plain_allreduce_seconds(big, 5);
  if (root) {
    std::printf(
        "plain MPI_Allreduce: latency %.2f us (8 bytes), bus bandwidth %.2f GB/s "
        "(64 MiB)\n",
        1e6 * lat, 2.0 * (n - 1) / n * static_cast<double>(big * 4) / tbig / 1e9);
  }
  return 0;
}
