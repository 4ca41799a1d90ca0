// The autograd / accumulation path on Device::CUDA (the emulated device in CI): kept small.
#include <gtest/gtest.h>

#include <limits>

#include "core/half.h"
#include "mlp_helpers.h"

namespace gradaccum::test {
namespace {

using autograd::Variable;
using optim::AccumulationWindow;
using optim::LossScaling;
using optim::OverflowPolicy;
using optim::SGD;
using optim::SGDOptions;
using optim::StepReport;
using optim::WindowOptions;

constexpr std::int64_t kIn = 4, kHidden = 6, kOut = 2, kBatch = 6;

std::vector<std::vector<float>> train(Device device, const std::vector<std::int64_t>& split,
                                      Reduction r, const WindowOptions& wo = {},
                                      std::vector<StepReport>* reports = nullptr,
                                      std::int64_t poisoned_row = -1) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 5);
  model.to(device);
  AccumulationWindow window(model.parameters(), wo);
  SGD opt(model.parameters(), SGDOptions(0.05).momentum(0.9));
  for (int s = 0; s < 2; ++s) {
    std::vector<float> xv = random_values(kBatch * kIn, 100 + s);
    if (poisoned_row >= 0 && s == 0) {
      for (std::int64_t j = 0; j < kIn; ++j) {
        xv[static_cast<std::size_t>(poisoned_row * kIn + j)] =
            std::numeric_limits<float>::quiet_NaN();
      }
    }
    Tensor x = Tensor::from_vector(xv, {kBatch, kIn}, DType::f32, device);
    Tensor y = random_tensor({kBatch, kOut}, 200 + s, DType::f32, device);
    StepReport rep = window_step(model, window, opt, x, y, split, r);
    if (reports) reports->push_back(rep);
  }
  return snapshot(model.parameters());
}

TEST(AutogradGpu, SplitsAgreeWithOneBatchAndWithTheCpu) {
  GA_REQUIRE_CUDA();
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    const auto cpu = train(Device::CPU, {6}, r);
    const auto one = train(Device::CUDA, {6}, r);
    const auto uneven = train(Device::CUDA, {4, 1, 1}, r);
    EXPECT_LE(max_rel_diff(one, cpu), 1e-5) << reduction_name(r);
    EXPECT_LE(max_rel_diff(uneven, one), 2e-6) << reduction_name(r);
  }
}

TEST(AutogradGpu, DropMicroBatchCountsOnTheDevice) {
  GA_REQUIRE_CUDA();
  std::vector<StepReport> reps;
  const WindowOptions drop = WindowOptions()
                                 .overflow(OverflowPolicy::DropMicroBatch)
                                 .loss_scaling(LossScaling::dynamic(256.0f));
  train(Device::CUDA, {2, 2, 2}, Reduction::Mean, drop, &reps, /*poisoned_row=*/3);
  ASSERT_EQ(reps.size(), 2u);
  EXPECT_TRUE(reps[0].applied);
  EXPECT_EQ(reps[0].micro_batches_dropped, 1);
  EXPECT_EQ(reps[0].samples, 4);
  EXPECT_EQ(reps[0].loss_scale, 128.0f);
  EXPECT_EQ(reps[1].micro_batches_dropped, 0);
  EXPECT_EQ(reps[1].samples, 6);
}

TEST(AutogradGpu, SkipStepSkipsAndBacksOff) {
  GA_REQUIRE_CUDA();
  std::vector<StepReport> reps;
  const WindowOptions skip = WindowOptions().loss_scaling(LossScaling::dynamic(256.0f));
  train(Device::CUDA, {3, 3}, Reduction::Sum, skip, &reps, /*poisoned_row=*/1);
  ASSERT_EQ(reps.size(), 2u);
  EXPECT_FALSE(reps[0].applied);
  EXPECT_EQ(reps[0].loss_scale, 128.0f);
  EXPECT_TRUE(reps[1].applied);
}

TEST(AutogradGpu, F16ModelWithMasterWeights) {
  GA_REQUIRE_CUDA();
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 5);
  model.to(Device::CUDA).to(DType::f16);
  AccumulationWindow window(model.parameters(), WindowOptions()
                                                    .overflow(OverflowPolicy::DropMicroBatch)
                                                    .loss_scaling(LossScaling::dynamic()));
  SGD opt(model.parameters(), SGDOptions(0.05));
  Tensor x = random_tensor({kBatch, kIn}, 1, DType::f16, Device::CUDA);
  Tensor y = random_tensor({kBatch, kOut}, 2, DType::f16, Device::CUDA);
  const StepReport rep = window_step(model, window, opt, x, y, {3, 3}, Reduction::Mean);
  EXPECT_EQ(rep.micro_batches + rep.micro_batches_dropped, 2);
  auto params = model.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto master = opt.master_weight(i).to_vector();
    auto half = params[i].value().to_vector();
    for (std::size_t j = 0; j < half.size(); ++j)
      EXPECT_EQ(half[j], round_to_half(master[j]));
  }
}

TEST(AutogradGpu, MixingDevicesThrows) {
  GA_REQUIRE_CUDA();
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 5);
  model.to(Device::CUDA);
  EXPECT_THROW(model(Variable(random_tensor({2, kIn}, 1))), Error);
  nn::Sequential cpu_model = make_mlp(kIn, kHidden, kOut, 5);
  AccumulationWindow window(cpu_model.parameters());
  Variable loss =
      nn::L1Loss()(model(Variable(random_tensor({2, kIn}, 1, DType::f32, Device::CUDA))),
                   Variable(random_tensor({2, kOut}, 2, DType::f32, Device::CUDA)));
  EXPECT_THROW(window.backward(loss), Error);
}

}  // namespace
}  // namespace gradaccum::test
