// The accumulation-overhead benchmark: one MLP training step (Linear-ReLU-Linear, L1, SGD) at a
// fixed effective batch B, split into k = 1 … B micro-batches.
//   BM_Step/kernels: the step written with the kernels directly, so the parameter-gradient mode
//     can be switched: `acc` accumulates the k micro-batches (the real thing), `ovw` overwrites
//     (the same work without the accumulation); acc/ovw isolates the cost of accumulating.
//   BM_Step/engine: the same step through the public API (autograd, AccumulationWindow, SGD).
// Counters: samples/s, FLOP/s (6·B·(in·hidden + hidden·out) per step), t(k)/t(1) ("vs_k1"),
// and for `acc` rows the ratio to the `ovw` row of the same shape ("acc_vs_ovw").
//   BM_LaunchOverhead: the micro-steps of one window of the small shape (in 64, hidden 256, out 8,
//     B 256 in k micro-batches) replayed as a CUDA graph (optim::MicroStepGraph) or launched op by
//     op. Counters: us_per_micro_step, kernels (graph nodes per micro-step), and on graph rows
//     graph_vs_ops (its time over the op-by-op row's of the same k). GPU only; on the emulated
//     device one iteration each, as a smoke test (its times mean nothing).
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/nn.h"
#include "bench_util.h"
#include "core/cuda_device.h"
#include "kernels/l1_loss.h"
#include "kernels/linear.h"
#include "kernels/sgd.h"
#include "optim/optim.h"

namespace gradaccum::bench {
namespace {

struct Shape3 {
  std::int64_t in, hidden, out, batch;
};

enum class Path { KernelsAccumulate, KernelsOverwrite, Engine };

// Per-step times already measured, for the ratio counters (benchmarks run in order).
using Key = std::tuple<int, int, int, std::int64_t, std::int64_t, bool>;
std::map<Key, double>& k1_times() {
  static std::map<Key, double> m;
  return m;
}
std::map<std::tuple<Key, std::int64_t>, double>& overwrite_times() {
  static std::map<std::tuple<Key, std::int64_t>, double> m;
  return m;
}

std::vector<std::int64_t> split(std::int64_t batch, std::int64_t k) {
  std::vector<std::int64_t> sizes;
  for (std::int64_t i = 0; i < k; ++i)
    sizes.push_back(batch / k + (i < batch % k));
  return sizes;
}

// The step through the kernels. Parameters f32 (f16 model: f16 copies refreshed by the update).
struct KernelStep {
  KernelStep(const Shape3& shape, DType model_dtype, Device dev, const GemmConfig& gemm)
      : s(shape), dtype(model_dtype), device(dev), config(gemm) {
    w1 = random_input({s.hidden, s.in}, 1, DType::f32, device);
    b1 = random_input({s.hidden}, 2, DType::f32, device);
    w2 = random_input({s.out, s.hidden}, 3, DType::f32, device);
    b2 = random_input({s.out}, 4, DType::f32, device);
    for (Tensor* p : {&w1, &b1, &w2, &b2}) {
      grads.push_back(Tensor::zeros(p->shape(), DType::f32, device));
      momenta.push_back(Tensor::zeros(p->shape(), DType::f32, device));
      if (dtype == DType::f16) model.push_back(p->to(DType::f16));
    }
    for (int i = 0; i < kInputSets; ++i) {
      xs.push_back(random_input({s.batch, s.in}, 10 + i, dtype, device));
      ys.push_back(random_input({s.batch, s.out}, 20 + i, dtype, device));
    }
    scale = Tensor::full({1}, 1.0f / static_cast<float>(s.batch * s.out), DType::f32, device);
    loss = Tensor::zeros({1}, DType::f32, device);
  }

  const Tensor& param(int i) const {
    const Tensor* f32[] = {&w1, &b1, &w2, &b2};
    return dtype == DType::f16 ? model[i] : *f32[i];
  }

  // One optimizer step over micro-batches of the given sizes (row slices of input set `set`).
  void run(const std::vector<std::int64_t>& sizes, int set, GradientMode mode) {
    std::int64_t row = 0;
    for (std::int64_t m : sizes) {
      // Slicing copies the rows: the same cost a data loader's micro-batch copy has.
      Tensor x = xs[set].rows(row, row + m);
      Tensor y = ys[set].rows(row, row + m);
      Tensor h = Tensor::empty({m, s.hidden}, dtype, device);
      Tensor p = Tensor::empty({m, s.out}, dtype, device);
      Tensor dp = Tensor::empty({m, s.out}, dtype, device);
      Tensor dh = Tensor::empty({m, s.hidden}, dtype, device);
      linear_forward(x, param(0), &param(1), h, /*fuse_relu=*/true, config);
      linear_forward(h, param(2), &param(3), p, false, config);
      l1_loss_forward(p, y, loss, GradientMode::Accumulate);
      l1_loss_backward(p, y, 1.0f, nullptr, dp, GradientMode::Overwrite);
      linear_backward_params(dp, h, grads[2], &grads[3], mode, nullptr, config);
      linear_backward_input(dp, param(2), dh, GradientMode::Overwrite, &h, config);
      linear_backward_params(dh, x, grads[0], &grads[1], mode, nullptr, config);
      row += m;
    }
    Tensor* params[] = {&w1, &b1, &w2, &b2};
    SgdHyper hyper;
    hyper.lr = 1e-3f;
    hyper.momentum = 0.9f;
    for (int i = 0; i < 4; ++i) {
      SgdUpdateArgs a;
      a.param = params[i];
      a.grad = &grads[i];
      a.grad_scale = &scale;
      a.momentum_buf = &momenta[i];
      a.param_f16 = dtype == DType::f16 ? &model[i] : nullptr;
      sgd_update(a, hyper);
      grads[i].zero_();
    }
  }

  Shape3 s;
  DType dtype;
  Device device;
  GemmConfig config;
  Tensor w1, b1, w2, b2, scale, loss;
  std::vector<Tensor> grads, momenta, model, xs, ys;
};

// Args: {path, device, dtype, deterministic, in, hidden, out, B, k}
void BM_Step(benchmark::State& state) {
  const auto path = static_cast<Path>(state.range(0));
  const auto device = static_cast<Device>(state.range(1));
  const auto dtype = static_cast<DType>(state.range(2));
  const bool deterministic = state.range(3) != 0;
  const Shape3 s{state.range(4), state.range(5), state.range(6), state.range(7)};
  const std::int64_t k = state.range(8);
  if (skip_without_device(state, device)) return;
  GemmConfig config;
  config.deterministic = deterministic;
  const auto sizes = split(s.batch, k);
  double t = 0;  // seconds per step
  try {
    if (path == Path::Engine) {
      nn::Sequential model({{"fc1", nn::Linear(nn::LinearOptions(s.in, s.hidden).seed(1))},
                            {"relu", nn::ReLU()},
                            {"fc2", nn::Linear(nn::LinearOptions(s.hidden, s.out).seed(2))}});
      model.to(dtype);
      model.to(device);
      model.set_gemm_config(config);
      optim::AccumulationWindow window(model.parameters());
      optim::SGD opt(model.parameters(), optim::SGDOptions(1e-3).momentum(0.9));
      nn::L1Loss loss_fn(Reduction::Mean);
      std::vector<Tensor> xs, ys;
      for (int i = 0; i < kInputSets; ++i) {
        xs.push_back(random_input({s.batch, s.in}, 10 + i, dtype, device));
        ys.push_back(random_input({s.batch, s.out}, 20 + i, dtype, device));
      }
      t = run_timed(state, device, [&](int set) {
        window.zero_grad();
        std::int64_t row = 0;
        for (std::int64_t m : sizes) {
          autograd::Variable x(xs[set].rows(row, row + m));
          autograd::Variable y(ys[set].rows(row, row + m));
          window.backward(loss_fn(model.forward(x), y));
          row += m;
        }
        opt.step(window);
      });
    } else {
      KernelStep step(s, dtype, device, config);
      const GradientMode mode =
          path == Path::KernelsAccumulate ? GradientMode::Accumulate : GradientMode::Overwrite;
      t = run_timed(state, device, [&](int set) { step.run(sizes, set, mode); });
    }
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double flops = 6.0 * s.batch * (s.in * s.hidden + s.hidden * s.out);
  set_rates(state, flops, 0);
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(s.batch) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
  const Key key{
      static_cast<int>(path), static_cast<int>(device), static_cast<int>(dtype), s.in, s.hidden,
      deterministic};
  if (k == 1) k1_times()[key] = t;
  if (k1_times().count(key) && k1_times()[key] > 0) state.counters["vs_k1"] = t / k1_times()[key];
  if (path == Path::KernelsOverwrite) {
    overwrite_times()[{key, k}] = t;
  } else if (path == Path::KernelsAccumulate) {
    Key ovw = key;
    std::get<0>(ovw) = static_cast<int>(Path::KernelsOverwrite);
    if (overwrite_times().count({ovw, k}) && overwrite_times()[{ovw, k}] > 0) {
      state.counters["acc_vs_ovw"] = t / overwrite_times()[{ovw, k}];
    }
  }
}

void StepArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"path", "dev", "dtype", "det", "in", "hidden", "out", "B", "k"});
  const auto f32 = static_cast<std::int64_t>(DType::f32);
  const auto f16 = static_cast<std::int64_t>(DType::f16);
  const auto cpu = static_cast<std::int64_t>(Device::CPU);
  const auto cuda = static_cast<std::int64_t>(Device::CUDA);
  struct Case {
    std::int64_t dev, in, hidden, out, batch;
    std::vector<std::int64_t> ks;
  };
  const std::vector<Case> cases = {
      {cpu, 64, 256, 8, 256, {1, 4, 16, 64, 256}},  {cpu, 256, 1024, 8, 1024, {1, 4, 16}},
      {cuda, 64, 256, 8, 256, {1, 4, 16, 64, 256}}, {cuda, 256, 1024, 8, 1024, {1, 4, 16, 64}},
      {cuda, 1024, 4096, 8, 4096, {1, 4, 16}},      {cuda, 4096, 16384, 8, 4096, {1, 4}},
  };
  for (const Case& c : cases) {
    for (std::int64_t dtype : {f32, f16}) {
      if (c.dev == cpu && dtype == f16) continue;  // fp16 is a GPU format here
      for (std::int64_t det : {0, 1}) {
        if (dtype == f16 && det) continue;
        // Overwrite rows first, so each accumulate row can report acc_vs_ovw.
        for (Path p : {Path::KernelsOverwrite, Path::KernelsAccumulate, Path::Engine}) {
          // det=1 engine rows on the CPU: the step a user runs with --deterministic (OpenBLAS
          // vs the fixed-order kernel). Not on CUDA: its default fp32 path is that kernel already.
          if (p == Path::Engine && det && c.dev != cpu) continue;
          for (std::int64_t k : c.ks) {
            b->Args({static_cast<std::int64_t>(p), c.dev, dtype, det, c.in, c.hidden, c.out,
                     c.batch, k});
          }
        }
      }
    }
  }
}

BENCHMARK(BM_Step)->Apply(StepArgs)->UseManualTime()->Unit(benchmark::kMillisecond);

std::map<std::int64_t, double>& op_by_op_micro_step_times() {
  static std::map<std::int64_t, double> m;
  return m;
}

// Args: {graph, k}
void BM_LaunchOverhead(benchmark::State& state) {
  const bool graph = state.range(0) != 0;
  const std::int64_t k = state.range(1);
  const Shape3 s{64, 256, 8, 256};
  if (skip_without_device(state, Device::CUDA)) return;
  const std::int64_t m = s.batch / k;
  double t = 0;  // seconds per window of k micro-steps
  std::size_t kernels = 0;
  try {
    nn::Sequential model({{"fc1", nn::Linear(nn::LinearOptions(s.in, s.hidden).seed(1))},
                          {"relu", nn::ReLU()},
                          {"fc2", nn::Linear(nn::LinearOptions(s.hidden, s.out).seed(2))}});
    model.to(Device::CUDA);
    optim::AccumulationWindow window(model.parameters());
    nn::L1Loss loss_fn(Reduction::Mean);
    // Micro-batches already on the device, as a data loader with prefetch would hand them over.
    std::vector<std::vector<Tensor>> xs(kInputSets), ys(kInputSets);
    for (int i = 0; i < kInputSets; ++i) {
      const Tensor x = random_input({s.batch, s.in}, 10 + i, DType::f32, Device::CUDA);
      const Tensor y = random_input({s.batch, s.out}, 20 + i, DType::f32, Device::CUDA);
      for (std::int64_t r = 0; r < s.batch; r += m) {
        xs[i].push_back(x.rows(r, r + m));
        ys[i].push_back(y.rows(r, r + m));
      }
    }
    const optim::MicroStepGraph::StepFn step = [&](const autograd::Variable& x,
                                                   const autograd::Variable& y) {
      return loss_fn(model(x), y);
    };
    std::unique_ptr<optim::MicroStepGraph> g;
    if (graph) {
      g = std::make_unique<optim::MicroStepGraph>(window, step, Shape{m, s.in}, Shape{m, s.out},
                                                  DType::f32);
    }
    t = run_timed(state, Device::CUDA, [&](int set) {
      window.zero_grad();
      for (std::int64_t i = 0; i < k; ++i) {
        if (g) {
          g->run(xs[set][i], ys[set][i]);
        } else {
          window.backward(
              step(autograd::Variable(xs[set][i].clone()), autograd::Variable(ys[set][i].clone())));
        }
      }
    });
    if (g && !g->captured()) {
      state.SkipWithError(("graph not captured: " + g->fallback_reason()).c_str());
      return;
    }
    kernels = g ? g->kernels_per_micro_step() : 0;
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double per_micro_step = t / static_cast<double>(k);
  state.counters["us_per_micro_step"] = per_micro_step * 1e6;
  if (graph) {
    state.counters["kernels"] = static_cast<double>(kernels);
    const auto it = op_by_op_micro_step_times().find(k);
    if (it != op_by_op_micro_step_times().end() && it->second > 0) {
      state.counters["graph_vs_ops"] = per_micro_step / it->second;
    }
  } else {
    op_by_op_micro_step_times()[k] = per_micro_step;
  }
}

void LaunchOverheadArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"graph", "k"});
  for (std::int64_t k : {1, 4, 16, 64}) {
    b->Args({0, k});  // op by op first: each graph row reports its ratio to it
    b->Args({1, k});
  }
}

bool emulated_device() {
  return cuda_available() && cuda_device_name().find("emulated") != std::string::npos;
}

// Registered by hand: on the emulated device each row runs once, a smoke test.
const bool kLaunchOverheadRegistered = [] {
  auto* b = benchmark::RegisterBenchmark("BM_LaunchOverhead", BM_LaunchOverhead)
                ->Apply(LaunchOverheadArgs)
                ->UseManualTime()
                ->Unit(benchmark::kMicrosecond);
  if (emulated_device()) b->Iterations(1);
  return true;
}();

}  // namespace
}  // namespace gradaccum::bench
