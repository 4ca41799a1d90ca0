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
// Then the cost model's constants: latency (8-byte all-reduce) and bandwidth (64 MiB). Rank 0
// prints; everything is measured, nothing predicted here (docs/distributed.md uses these).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
  for (int k : {1, 4, 16, 64}) {
    ga::nn::Sequential model({{"fc1", ga::nn::Linear(ga::nn::LinearOptions(in, hidden).seed(1))},
                              {"relu", ga::nn::ReLU()},
                              {"fc2", ga::nn::Linear(ga::nn::LinearOptions(hidden, out).seed(2))}});
    model.to(device);
    ga::optim::AccumulationWindow window(
        model.parameters(),
        ga::optim::WindowOptions().process_group(pg).compensation(
            kahan == "kahan" ? ga::optim::Compensation::Kahan : ga::optim::Compensation::None));
    ga::optim::SGD opt(model.parameters(), ga::optim::SGDOptions(0.01).momentum(0.9));
    ga::nn::L1Loss loss_fn(ga::Reduction::Mean);
    std::vector<ga::Tensor> xs, ys;
    for (int m = 0; m < std::min(k, 4); ++m) {
      const auto seed = static_cast<std::uint64_t>(pg->rank() * 100 + m);
      xs.push_back(ga::uniform({micro, in}, -1, 1, seed).to(device));
      ys.push_back(ga::uniform({micro, out}, -1, 1, seed + 50).to(device));
    }
    std::vector<double> step_s, reduce_s, skew_s;
    for (int s = 0; s < steps + 2; ++s) {
      MPI_Barrier(MPI_COMM_WORLD);
      const auto t0 = Clock::now();
      window.zero_grad();
      for (int m = 0; m < k; ++m) {
        const std::size_t i = static_cast<std::size_t>(m) % xs.size();
        window.backward(loss_fn(model(ga::autograd::Variable(xs[i].clone())),
                                ga::autograd::Variable(ys[i].clone())));
      }
      // The ranks' backwards end at different times (2 cores, two processes): wait here, so
      // that the reduction's time is the reduction's, not the skew.
      if (device == ga::Device::CUDA) ga::cuda_synchronize();
      const auto tw = Clock::now();
      MPI_Barrier(MPI_COMM_WORLD);
      skew_s.push_back(seconds_since(tw));
      opt.step(window);
      if (device == ga::Device::CUDA) ga::cuda_synchronize();
      if (s >= 2) {  // two warm-up steps
        step_s.push_back(seconds_since(t0));
        reduce_s.push_back(window.last_reduction_seconds());
      }
    }
    const std::size_t bytes = window.reduced_bytes();
    const double plain = plain_allreduce_seconds(bytes / 4, steps);
    const double step = median(step_s), reduce = median(reduce_s);
    const double bus = 2.0 * (n - 1) / n * static_cast<double>(bytes);
    if (root) {
      std::printf("%4d %12zu %10.3f %10.3f %6.1f%% %10.3f %9.2f %9.2f %7.2f\n", k, bytes,
                  1e3 * step, 1e3 * reduce, 100 * reduce / step, 1e3 * plain, bus / reduce / 1e9,
                  bus / plain / 1e9, plain / reduce);
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
