// BatchNorm1d on the device against the CPU: every kernel bit for bit (f32 and f16), and whole
// window-mode and ghost steps byte for byte in deterministic mode.
#include <gtest/gtest.h>

#include <vector>

#include "batch_norm_helpers.h"
#include "kernels/batch_norm.h"

namespace gradaccum::test {
namespace {

struct Results {
  std::vector<std::vector<float>> values;
};

// Every kernel on one device, from the same host inputs; outputs poisoned first.
Results run_kernels(Device d, DType dtype) {
  const std::int64_t n = 300, c = 40;  // several row blocks and channel blocks on the device
  const Tensor x = random_tensor({n, c}, 11, dtype, Device::CPU, -3.0f, 5.0f).to(d);
  const Tensor dy = random_tensor({n, c}, 12, dtype).to(d);
  const Tensor w = random_tensor({c}, 13, DType::f32, Device::CPU, 0.5f, 1.5f).to(d);
  const Tensor b = random_tensor({c}, 14).to(d);
  Results r;
  NonFiniteFlag flag(d);
  ExactSum sum({c}, d);
  Tensor mean = poisoned({c}, DType::f32, d), var = poisoned({c}, DType::f32, d),
         invstd = poisoned({c}, DType::f32, d);
  batch_norm_sum_rows(x, nullptr, BatchNormRowSum::Values, sum, &flag);
  batch_norm_mean(sum, n, &flag, mean);
  sum.zero();
  batch_norm_sum_rows(x, &mean, BatchNormRowSum::SquaredDeviations, sum, &flag);
  batch_norm_variance(sum, n, 1e-5f, &flag, var, invstd);
  Tensor y = poisoned({n, c}, dtype, d);
  batch_norm_forward(x, mean, invstd, &w, &b, y);
  ExactSum s1({c}, d), s2({c}, d);
  batch_norm_sum_backward(dy, x, mean, invstd, s1, s2, &flag);
  Tensor sum_dy = poisoned({c}, DType::f32, d), sum_dy_xhat = poisoned({c}, DType::f32, d);
  batch_norm_mean(s1, 1, &flag, sum_dy);
  batch_norm_mean(s2, 1, &flag, sum_dy_xhat);
  Tensor dx = poisoned({n, c}, dtype, d);
  batch_norm_backward_input(dy, x, mean, invstd, &w, {&sum_dy, &sum_dy_xhat, n}, dx,
                            GradientMode::Overwrite);
  batch_norm_backward_input(dy, x, mean, invstd, nullptr, {}, dx, GradientMode::Accumulate);
  Tensor rm = random_tensor({c}, 15).to(d),
         rv = random_tensor({c}, 16, DType::f32, Device::CPU, 0.5f, 2.0f).to(d);
  batch_norm_update_running(rm, rv, mean, var, n, 0.1f);
  Tensor eval_invstd = poisoned({c}, DType::f32, d);
  batch_norm_invstd(rv, 1e-3f, eval_invstd);
  EXPECT_FALSE(flag.raised());
  for (const Tensor* t :
       {&mean, &var, &invstd, &y, &sum_dy, &sum_dy_xhat, &dx, &rm, &rv, &eval_invstd})
    r.values.push_back(t->to(Device::CPU).to(DType::f32).to_vector());
  return r;
}

TEST(BatchNormCuda, KernelsAreTheCpusBitForBit) {
  GA_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f16}) {
    const Results cpu = run_kernels(Device::CPU, dtype);
    const Results dev = run_kernels(Device::CUDA, dtype);
    ASSERT_EQ(cpu.values.size(), dev.values.size());
    for (std::size_t i = 0; i < cpu.values.size(); ++i)
      EXPECT_EQ(cpu.values[i], dev.values[i]) << "output " << i << ", " << dtype_name(dtype);
  }
}

TEST(BatchNormCuda, NonFiniteInputRaisesTheFlag) {
  GA_REQUIRE_CUDA();
  std::vector<float> v(8 * 3, 0.5f);
  v[10] = NAN;
  const Tensor x = Tensor::from_vector(v, {8, 3}).to(Device::CUDA);
  ExactSum sum({3}, Device::CUDA);
  NonFiniteFlag flag(Device::CUDA);
  batch_norm_sum_rows(x, nullptr, BatchNormRowSum::Values, sum, &flag);
  EXPECT_TRUE(flag.raised());
}

// Two deterministic steps of the BN model on one device, window mode or ghost.
std::vector<std::vector<float>> train(Device d, bool window_mode,
                                      const std::vector<std::int64_t>& split) {
  nn::Sequential model = make_bn_mlp(6, 8, 3, 31);
  GemmConfig gc;
  gc.deterministic = true;
  model.set_gemm_config(gc);
  model.to(d);
  const std::int64_t batch = 12;
  const Tensor x = random_tensor({2 * batch, 6}, 32, DType::f32, Device::CPU, -2.0f, 3.0f).to(d);
  const Tensor y = random_tensor({2 * batch, 3}, 33).to(d);
  optim::AccumulationWindow window(model.parameters());
  optim::SGD opt(model.parameters(), optim::SGDOptions(0.1).momentum(0.9));
  for (int s = 0; s < 2; ++s) {
    const Tensor xs = x.rows(s * batch, (s + 1) * batch), ys = y.rows(s * batch, (s + 1) * batch);
    const optim::StepReport r =
        window_mode ? replay_step(model, window, opt, xs, ys, split, Reduction::Mean)
                    : window_step(model, window, opt, xs, ys, split, Reduction::Mean);
    EXPECT_TRUE(r.applied);
  }
  return state_snapshot(model);
}

TEST(BatchNormCuda, WindowAndGhostStepsAreTheCpusByteForByte) {
  GA_REQUIRE_CUDA();
  EXPECT_EQ(train(Device::CUDA, true, {5, 1, 6}), train(Device::CPU, true, {5, 1, 6}));
  EXPECT_EQ(train(Device::CUDA, true, {5, 1, 6}), train(Device::CPU, true, {12}));
  EXPECT_EQ(train(Device::CUDA, false, {6, 6}), train(Device::CPU, false, {6, 6}));
}

}  // namespace
}  // namespace gradaccum::test
