// Kernel benchmarks: the three GEMMs of a linear layer (forward, dX, dW-accumulate), hand-written
// against the vendor library (cuBLAS / OpenBLAS), in FLOP/s; the accumulation and SGD kernels in
// bytes/s next to a device-to-device copy measured in the same run (the bandwidth ceiling).
#include <string>
#include <vector>

#include "bench_util.h"
#include "kernels/accumulate.h"
#include "kernels/exact_sum.h"
#include "kernels/linear.h"
#include "kernels/sgd.h"

namespace gradaccum::bench {
namespace {

enum class Product { Forward, InputGrad, WeightGradAccumulate };

// Args: {device, dtype, backend, rows N, in, out}
void BM_LinearGemm(benchmark::State& state, Product product) {
  const auto device = static_cast<Device>(state.range(0));
  const auto dtype = static_cast<DType>(state.range(1));
  const auto backend = static_cast<GemmBackend>(state.range(2));
  const std::int64_t n = state.range(3), in = state.range(4), out = state.range(5);
  if (skip_without_device(state, device)) return;
  GemmConfig config;
  config.backend = backend;
  std::vector<Tensor> xs, dys;
  for (int s = 0; s < kInputSets; ++s) {
    xs.push_back(random_input({n, in}, 10 + s, dtype, device));
    dys.push_back(random_input({n, out}, 20 + s, dtype, device));
  }
  Tensor w = random_input({out, in}, 30, dtype, device);
  Tensor b = random_input({out}, 31, dtype, device);
  Tensor y = Tensor::empty({n, out}, dtype, device);
  Tensor dx = Tensor::empty({n, in}, dtype, device);
  Tensor dw = Tensor::zeros({out, in}, DType::f32, device);
  Tensor db = Tensor::zeros({out}, DType::f32, device);
  try {
    run_timed(state, device, [&](int s) {
      switch (product) {
        case Product::Forward:
          linear_forward(xs[s], w, &b, y, /*fuse_relu=*/true, config);
          break;
        case Product::InputGrad:
          linear_backward_input(dys[s], w, dx, GradientMode::Overwrite, nullptr, config);
          break;
        case Product::WeightGradAccumulate:
          linear_backward_params(dys[s], xs[s], dw, &db, GradientMode::Accumulate, nullptr, config);
          break;
      }
    });
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double es = static_cast<double>(dtype_size(dtype));
  const double flops = 2.0 * n * in * out;
  double bytes = 0;
  switch (product) {
    case Product::Forward:
      bytes = es * (n * in + out * in + n * out);
      break;
    case Product::InputGrad:
      bytes = es * (n * out + out * in + n * in);
      break;
    case Product::WeightGradAccumulate:
      bytes = es * (n * out + n * in) + 4.0 * 2 * (out * in + out);
      break;
  }
  set_rates(state, flops, bytes);
}

void GemmArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dev", "dtype", "backend", "N", "in", "out"});
  for (auto dev : {Device::CPU, Device::CUDA}) {
    for (auto backend : {GemmBackend::Handwritten, GemmBackend::Vendor}) {
      const auto d = static_cast<int64_t>(dev), k = static_cast<int64_t>(backend);
      const auto f32 = static_cast<int64_t>(DType::f32), f16 = static_cast<int64_t>(DType::f16);
      if (dev == Device::CPU) {
        b->Args({d, f32, k, 256, 64, 256});
        b->Args({d, f32, k, 1024, 256, 1024});
      } else {
        for (auto dt : {f32, f16}) {
          b->Args({d, dt, k, 1024, 256, 1024});
          b->Args({d, dt, k, 4096, 1024, 4096});
          b->Args({d, dt, k, 4096, 4096, 4096});
        }
      }
    }
  }
}

BENCHMARK_CAPTURE(BM_LinearGemm, forward, Product::Forward)->Apply(GemmArgs)->UseManualTime();
BENCHMARK_CAPTURE(BM_LinearGemm, input_grad, Product::InputGrad)->Apply(GemmArgs)->UseManualTime();
BENCHMARK_CAPTURE(BM_LinearGemm, weight_grad_acc, Product::WeightGradAccumulate)
    ->Apply(GemmArgs)
    ->UseManualTime();

// Args: {device, elements}. The bandwidth ceiling: copy n floats (n read + n written).
void BM_Copy(benchmark::State& state) {
  const auto device = static_cast<Device>(state.range(0));
  const std::int64_t n = state.range(1);
  if (skip_without_device(state, device)) return;
  Tensor src = random_input({n}, 1, DType::f32, device);
  Tensor dst = Tensor::empty({n}, DType::f32, device);
  run_timed(state, device, [&](int) { dst.copy_from(src); });
  set_rates(state, 0, 8.0 * n);
}

// acc_f32 += g (f32 or f16): reads acc and g, writes acc.
void BM_Accumulate(benchmark::State& state) {
  const auto device = static_cast<Device>(state.range(0));
  const auto gdtype = static_cast<DType>(state.range(1));
  const std::int64_t n = state.range(2);
  if (skip_without_device(state, device)) return;
  Tensor acc = random_input({n}, 1, DType::f32, device);
  std::vector<Tensor> gs;
  for (int s = 0; s < kInputSets; ++s)
    gs.push_back(random_input({n}, 2 + s, gdtype, device));
  try {
    run_timed(state, device, [&](int s) { accumulate(acc, gs[s]); });
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  set_rates(state, static_cast<double>(n), (8.0 + dtype_size(gdtype)) * n);
}

// SGD with momentum: reads p, g, buf, writes p, buf.
void BM_SgdUpdate(benchmark::State& state) {
  const auto device = static_cast<Device>(state.range(0));
  const std::int64_t n = state.range(1);
  if (skip_without_device(state, device)) return;
  Tensor p = random_input({n}, 1, DType::f32, device);
  Tensor g = random_input({n}, 2, DType::f32, device);
  Tensor buf = Tensor::zeros({n}, DType::f32, device);
  Tensor scale = Tensor::full({1}, 0.5f, DType::f32, device);
  SgdHyper hyper;
  hyper.lr = 1e-3f;
  hyper.momentum = 0.9f;
  SgdUpdateArgs args;
  args.param = &p;
  args.grad = &g;
  args.grad_scale = &scale;
  args.momentum_buf = &buf;
  try {
    run_timed(state, device, [&](int) { sgd_update(args, hyper); });
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  set_rates(state, 0, 4.0 * 5 * n);
}

// One micro-batch's f32 gradient into the window's sum, per accumulation mode (0 naive, 1
// Kahan, 2 exact). Bytes per element moved: naive 12 (acc read and written, g read), Kahan 20
// (and comp), exact 36 (g read, two 8-byte limbs read and written).
void BM_AccumulateMode(benchmark::State& state) {
  const auto device = static_cast<Device>(state.range(0));
  const int mode = static_cast<int>(state.range(1));
  const std::int64_t n = state.range(2);
  if (skip_without_device(state, device)) return;
  Tensor acc = random_input({n}, 1, DType::f32, device);
  Tensor comp = Tensor::zeros({n}, DType::f32, device);
  ExactSum exact;
  if (mode == 2) exact = ExactSum({n}, device);
  std::vector<Tensor> gs;
  for (int s = 0; s < kInputSets; ++s)
    gs.push_back(random_input({n}, 2 + s, DType::f32, device));
  try {
    run_timed(state, device, [&](int s) {
      if (mode == 2) {
        exact.add(gs[s]);
      } else {
        AccumulateOptions o;
        if (mode == 1) o.compensation = &comp;
        accumulate(acc, gs[s], o);
      }
    });
  } catch (const Error& e) {
    state.SkipWithError(e.what());
    return;
  }
  const double bytes = mode == 0 ? 12.0 : mode == 1 ? 20.0 : 36.0;
  set_rates(state, static_cast<double>(n), bytes * n);
  state.SetLabel(mode == 0 ? "naive" : mode == 1 ? "kahan" : "exact");
}

// The exact step's rounding: 72 bytes read (nine limbs) and 4 written per element.
void BM_ExactRound(benchmark::State& state) {
  const auto device = static_cast<Device>(state.range(0));
  const std::int64_t n = state.range(1);
  if (skip_without_device(state, device)) return;
  ExactSum exact({n}, device);
  for (int s = 0; s < 4; ++s)
    exact.add(random_input({n}, 40 + s, DType::f32, device));
  Tensor out = Tensor::empty({n}, DType::f32, device);
  run_timed(state, device, [&](int) { exact.round_to(out); });
  set_rates(state, static_cast<double>(n), 76.0 * n);
}

void BandwidthArgs(benchmark::internal::Benchmark* b) {
  for (auto dev : {Device::CPU, Device::CUDA}) {
    const auto d = static_cast<int64_t>(dev);
    b->Args({d, dev == Device::CPU ? (1 << 22) : (1 << 26)});
  }
}

BENCHMARK(BM_Copy)->Apply(BandwidthArgs)->UseManualTime();
BENCHMARK(BM_SgdUpdate)->Apply(BandwidthArgs)->UseManualTime();
BENCHMARK(BM_ExactRound)->Apply(BandwidthArgs)->UseManualTime();
BENCHMARK(BM_AccumulateMode)
    ->Apply([](benchmark::internal::Benchmark* b) {
      for (auto dev : {Device::CPU, Device::CUDA}) {
        for (int mode : {0, 1, 2}) {
          b->Args({static_cast<int64_t>(dev), mode, dev == Device::CPU ? (1 << 22) : (1 << 26)});
        }
      }
    })
    ->UseManualTime();
BENCHMARK(BM_Accumulate)
    ->Apply([](benchmark::internal::Benchmark* b) {
      for (auto dev : {Device::CPU, Device::CUDA}) {
        for (auto dt : {DType::f32, DType::f16}) {
          b->Args({static_cast<int64_t>(dev), static_cast<int64_t>(dt),
                   dev == Device::CPU ? (1 << 22) : (1 << 26)});
        }
      }
    })
    ->UseManualTime();

}  // namespace
}  // namespace gradaccum::bench
