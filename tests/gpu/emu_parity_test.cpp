// Parity with the emulated device: each kernel (and two whole training windows) runs on the CUDA
// device on fixed inputs, and its outputs are compared with the emulated device's, kept in
// tests/data/emu_parity/ (written by an emulator build, scripts/emu_parity.sh). CI runs this on
// the emulator (so the files stay current); on a real GPU it says whether the H100 computes what
// the emulator computed, which no other test can.
//
// Two kinds of case:
//   Bits:  the algorithm is fixed operation by operation (the fp32 hand-written GEMM's fma chains,
//          the elementwise kernels, deterministic mode): any difference is a bug.
//   Close: the fp16 tensor-core GEMM (the rounding inside an MMA is the hardware's):
//          |got - emu| <= 2^-10·|emu| (one f16 rounding) + 1e-5·max|emu|.
//   Trained: parameters after training windows built on that GEMM, where an L1 gradient whose
//          prediction and target nearly tie may take the other sign (each such flip moves a
//          weight by ~lr·2/elements, ~1e-4 here): 2^-10·|emu| + 5e-3·max|emu|, ten times that,
//          far below what a wrong step gives (~lr = 5e-2).
// Each test records the largest difference in units in the last place (property max_ulp), and
// prints it, for the GPU suite's log.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "adamw_checks.h"
#include "core/npy.h"
#include "kernels/accumulate.h"
#include "kernels/l1_loss.h"
#include "kernels/linear.h"
#include "kernels/relu.h"
#include "kernels/sgd.h"
#include "mlp_helpers.h"
#include "test_util.h"

namespace gradaccum::test {
namespace {

enum class Match { Bits, Close, Trained };

using Outputs = std::vector<std::pair<std::string, Tensor>>;

struct ParityCase {
  std::string name;
  Match match;
  std::function<Outputs()> run;  // on Device::CUDA; outputs are copied to the host
};

void PrintTo(const ParityCase& c, std::ostream* os) {
  *os << c.name;
}

// Host copies of the named outputs, in order.
Outputs on_host(std::initializer_list<std::pair<const char*, const Tensor*>> named) {
  Outputs out;
  for (const auto& [name, t] : named)
    out.emplace_back(name, t->to(Device::CPU));
  return out;
}

Tensor on_cuda(const Shape& shape, std::uint64_t seed, DType dtype = DType::f32) {
  return random_tensor(shape, seed, dtype, Device::CUDA);
}

// ---- the linear layer: forward (+ReLU), input gradient (+ReLU mask), parameter gradients ----

constexpr std::int64_t kRows = 100, kIn = 72, kOut = 136;

Outputs linear_case(DType dtype, const GemmConfig& config) {
  const Tensor x = on_cuda({kRows, kIn}, 1, dtype);
  const Tensor w = on_cuda({kOut, kIn}, 2, dtype);
  const Tensor b = on_cuda({kOut}, 3, dtype);
  const Tensor dy = on_cuda({kRows, kOut}, 4, dtype);
  const Tensor dy2 = on_cuda({kRows, kOut}, 5, dtype);
  Tensor y = poisoned({kRows, kOut}, dtype, Device::CUDA);
  linear_forward(x, w, &b, y, /*fuse_relu=*/true, config);
  Tensor dx = poisoned({kRows, kIn}, dtype, Device::CUDA);
  linear_backward_input(dy, w, dx, GradientMode::Overwrite, /*relu_out=*/&x, config);
  // Two micro-batches' parameter gradients: Overwrite, then Accumulate on top.
  Tensor dw = poisoned({kOut, kIn}, DType::f32, Device::CUDA);
  Tensor db = poisoned({kOut}, DType::f32, Device::CUDA);
  linear_backward_params(dy, x, dw, &db, GradientMode::Overwrite, nullptr, config);
  linear_backward_params(dy2, x, dw, &db, GradientMode::Accumulate, nullptr, config);
  return on_host({{"y", &y}, {"dx", &dx}, {"dw", &dw}, {"db", &db}});
}

Outputs linear_kahan_case() {
  const Tensor x = on_cuda({kRows, kIn}, 11);
  const Tensor dy = on_cuda({kRows, kOut}, 12);
  Tensor dw = on_cuda({kOut, kIn}, 13), db = on_cuda({kOut}, 14);
  Tensor dw_comp = Tensor::zeros({kOut, kIn}, DType::f32, Device::CUDA);
  Tensor db_comp = Tensor::zeros({kOut}, DType::f32, Device::CUDA);
  KahanState kahan{&dw_comp, &db_comp};
  GemmConfig det;
  det.deterministic = true;
  for (int i = 0; i < 3; ++i)
    linear_backward_params(dy, x, dw, &db, GradientMode::Accumulate, &kahan, det);
  return on_host({{"dw", &dw}, {"dw_comp", &dw_comp}, {"db", &db}, {"db_comp", &db_comp}});
}

// ---- the elementwise kernels ----

constexpr std::int64_t kN = 1600;

Outputs relu_case(DType dtype) {
  const Tensor x = on_cuda({kN}, 21, dtype), dy = on_cuda({kN}, 22, dtype);
  Tensor y = poisoned({kN}, dtype, Device::CUDA);
  relu_forward(x, y);
  Tensor dx = on_cuda({kN}, 23, dtype);
  relu_backward(dy, y, dx, GradientMode::Accumulate);
  return on_host({{"y", &y}, {"dx", &dx}});
}

Outputs l1_case(DType dtype) {
  const Tensor pred = on_cuda({kN / 8, 8}, 31, dtype), target = on_cuda({kN / 8, 8}, 32, dtype);
  Tensor loss = Tensor::full({1}, 0.25f, DType::f32, Device::CUDA);
  l1_loss_forward(pred.rows(0, 100), target.rows(0, 100), loss, GradientMode::Overwrite);
  l1_loss_forward(pred.rows(100, kN / 8), target.rows(100, kN / 8), loss, GradientMode::Accumulate);
  const Tensor scale = Tensor::full({1}, 1024.0f, DType::f32, Device::CUDA);
  Tensor dpred = on_cuda({kN / 8, 8}, 33, dtype);
  l1_loss_backward(pred, target, 1.0f / 1600.0f, &scale, dpred, GradientMode::Accumulate);
  return on_host({{"loss_sum", &loss}, {"dpred", &dpred}});
}

Outputs accumulate_case() {
  Tensor acc = on_cuda({kN}, 41), comp = Tensor::zeros({kN}, DType::f32, Device::CUDA);
  const Tensor scale = Tensor::full({1}, 1.0f / 1024.0f, DType::f32, Device::CUDA);
  AccumulateOptions o;
  o.compensation = &comp;
  o.scale = &scale;
  for (std::uint64_t i = 0; i < 4; ++i)
    accumulate(acc, on_cuda({kN}, 42 + i, DType::f16), o);
  Tensor acc16 = on_cuda({kN}, 46, DType::f16);
  accumulate(acc16, on_cuda({kN}, 47, DType::f16));
  return on_host({{"acc", &acc}, {"comp", &comp}, {"acc16", &acc16}});
}

Outputs sgd_case() {
  Tensor param = on_cuda({kN}, 51), buf = on_cuda({kN}, 52);
  Tensor param16 = poisoned({kN}, DType::f16, Device::CUDA);
  const Tensor grad = on_cuda({kN}, 53),
               comp = random_tensor({kN}, 54, DType::f32, Device::CUDA, -1e-6f, 1e-6f);
  const Tensor scale = Tensor::full({1}, 1.0f / 7.0f, DType::f32, Device::CUDA);
  SgdUpdateArgs a;
  a.param = &param;
  a.grad = &grad;
  a.grad_comp = &comp;
  a.grad_scale = &scale;
  a.momentum_buf = &buf;
  a.param_f16 = &param16;
  SgdHyper h;
  h.lr = 0.05f;
  h.momentum = 0.9f;
  h.weight_decay = 1e-2f;
  h.nesterov = true;
  for (int i = 0; i < 2; ++i)
    sgd_update(a, h);
  return on_host({{"param", &param}, {"momentum_buf", &buf}, {"param_f16", &param16}});
}

Outputs adamw_case() {
  Tensor param = on_cuda({kN}, 71), m = on_cuda({kN}, 72);
  Tensor v = random_tensor({kN}, 73, DType::f32, Device::CUDA, 1e-3f, 1.0f);
  Tensor vmax = random_tensor({kN}, 74, DType::f32, Device::CUDA, 1e-3f, 1.0f);
  Tensor param16 = poisoned({kN}, DType::f16, Device::CUDA);
  const Tensor grad = on_cuda({kN}, 75),
               comp = random_tensor({kN}, 76, DType::f32, Device::CUDA, -1e-6f, 1e-6f);
  const Tensor scale = Tensor::full({1}, 1.0f / 7.0f, DType::f32, Device::CUDA);
  AdamwUpdateArgs a = adamw::args_of(param, grad, m, v);
  a.grad_comp = &comp;
  a.grad_scale = &scale;
  a.max_exp_avg_sq = &vmax;
  a.param_f16 = &param16;
  for (std::int64_t step = 1; step <= 2; ++step)
    adamw_update(a, AdamwHyper{3e-3, 0.9, 0.999, 1e-8, 0.05, true, step});
  return on_host({{"param", &param},
                  {"exp_avg", &m},
                  {"exp_avg_sq", &v},
                  {"max_exp_avg_sq", &vmax},
                  {"param_f16", &param16}});
}

// ---- two training windows of the MLP, uneven micro-batches, SGD with momentum ----

Outputs training_case(DType dtype, bool deterministic, const optim::WindowOptions& options) {
  nn::Sequential model = make_mlp(24, 48, 8, 7);
  model.to(dtype);
  model.to(Device::CUDA);
  GemmConfig gc;
  gc.deterministic = deterministic;
  model.set_gemm_config(gc);
  optim::AccumulationWindow window(model.parameters(), options);
  optim::SGD opt(model.parameters(), optim::SGDOptions(0.05).momentum(0.9));
  const Tensor x = random_tensor({100, 24}, 61, dtype, Device::CUDA);
  const Tensor y = random_tensor({100, 8}, 62, dtype, Device::CUDA);
  for (int step = 0; step < 2; ++step) {
    const optim::StepReport r =
        window_step(model, window, opt, x, y, {32, 32, 20, 16}, Reduction::Mean);
    EXPECT_TRUE(r.applied) << r.str();
  }
  Outputs out;
  for (const auto& [name, p] : model.named_parameters())
    out.emplace_back(name, p.value().to(Device::CPU));
  return out;
}

std::vector<ParityCase> parity_cases() {
  const GemmConfig hand{GemmBackend::Handwritten, false};
  const GemmConfig det{GemmBackend::Handwritten, true};
  const auto dynamic_drop = optim::WindowOptions()
                                .loss_scaling(optim::LossScaling::dynamic(1024.0f))
                                .overflow(optim::OverflowPolicy::DropMicroBatch)
                                .compensation(optim::Compensation::Kahan);
  return {
      {"linear_f32", Match::Bits, [=] { return linear_case(DType::f32, hand); }},
      {"linear_f32_deterministic", Match::Bits, [=] { return linear_case(DType::f32, det); }},
      {"linear_f16_tensor_cores", Match::Close, [=] { return linear_case(DType::f16, hand); }},
      {"linear_f16_deterministic", Match::Close, [=] { return linear_case(DType::f16, det); }},
      {"linear_kahan", Match::Bits, linear_kahan_case},
      {"relu_f32", Match::Bits, [] { return relu_case(DType::f32); }},
      {"relu_f16", Match::Bits, [] { return relu_case(DType::f16); }},
      {"l1_loss_f32", Match::Bits, [] { return l1_case(DType::f32); }},
      {"l1_loss_f16", Match::Bits, [] { return l1_case(DType::f16); }},
      {"accumulate", Match::Bits, accumulate_case},
      {"sgd_update", Match::Bits, sgd_case},
      {"adamw_update", Match::Bits, adamw_case},
      {"train_f32_deterministic", Match::Bits,
       [] { return training_case(DType::f32, true, optim::WindowOptions()); }},
      {"train_f16_dynamic_scale", Match::Trained,
       [=] { return training_case(DType::f16, false, dynamic_drop); }},
  };
}

// ---- comparison ----

std::string golden_dir() {
  return std::string(GRADACCUM_SOURCE_DIR) + "/tests/data/emu_parity";
}

// The value's position on the number line in units of its dtype's last place (monotonic).
std::int64_t ordinal(const Tensor& t, std::int64_t i) {
  if (t.dtype() == DType::f32) {
    std::int32_t bits;
    std::memcpy(&bits, t.data<float>() + i, sizeof bits);
    return bits < 0 ? std::int64_t{INT32_MIN} - bits : bits;
  }
  std::int16_t bits;
  std::memcpy(&bits, static_cast<const std::uint16_t*>(t.raw_data()) + i, sizeof bits);
  return bits < 0 ? std::int64_t{INT16_MIN} - bits : bits;
}

void expect_matches(const std::string& what, const Tensor& got, const Tensor& emu, Match match,
                    std::int64_t* max_ulp) {
  ASSERT_EQ(got.dtype(), emu.dtype()) << what;
  ASSERT_EQ(got.shape(), emu.shape()) << what << ": got " << got.shape().str();
  const std::vector<float> g = got.to_vector(), e = emu.to_vector();
  float scale = 0.0f;
  for (float v : e)
    scale = std::max(scale, std::fabs(v));
  int reported = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const auto k = static_cast<std::size_t>(i);
    const std::int64_t ulp = std::llabs(ordinal(got, i) - ordinal(emu, i));
    *max_ulp = std::max(*max_ulp, ulp);
    const float floor = (match == Match::Trained ? 5e-3f : 1e-5f) * scale;
    const bool ok = match == Match::Bits
                        ? ulp == 0
                        : std::fabs(g[k] - e[k]) <= std::ldexp(std::fabs(e[k]), -10) + floor;
    if (!ok && reported++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << g[k] << ", the emulator gave " << e[k]
                    << " (" << ulp << " ulp apart; "
                    << (match == Match::Bits ? "expected bit-identical" : "beyond the tolerance")
                    << ")";
    }
  }
}

class EmuParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(EmuParity, MatchesTheEmulator) {
  GA_REQUIRE_CUDA();
  const ParityCase& c = GetParam();
  const Outputs outputs = c.run();
  // GRADACCUM_EMU_PARITY_WRITE=dir: an emulator build writes the reference files instead.
  if (const char* dir = std::getenv("GRADACCUM_EMU_PARITY_WRITE")) {
    ASSERT_NE(cuda_device_name().find("emulated"), std::string::npos)
        << "the reference files come from the emulated device, not " << cuda_device_name();
    for (const auto& [name, t] : outputs)
      save_npy(std::string(dir) + "/" + c.name + "." + name + ".npy", t);
    return;
  }
  std::int64_t max_ulp = 0;
  for (const auto& [name, t] : outputs) {
    const std::string path = golden_dir() + "/" + c.name + "." + name + ".npy";
    ASSERT_TRUE(std::ifstream(path).good())
        << path << " is missing: scripts/emu_parity.sh writes the emulator's outputs";
    const Tensor emu = load_npy(path);
    expect_matches(c.name + "." + name, t, emu, c.match, &max_ulp);
  }
  RecordProperty("max_ulp", std::to_string(max_ulp));
  const char* kind = c.match == Match::Bits    ? "bits"
                     : c.match == Match::Close ? "close"
                                               : "trained";
  std::printf("emu parity: %-26s %-7s max %lld ulp on %s\n", c.name.c_str(), kind,
              static_cast<long long>(max_ulp), cuda_device_name().c_str());
}

INSTANTIATE_TEST_SUITE_P(Kernels, EmuParity, ::testing::ValuesIn(parity_cases()),
                         [](const ::testing::TestParamInfo<ParityCase>& param_info) {
                           return param_info.param.name;
                         });

}  // namespace
}  // namespace gradaccum::test
