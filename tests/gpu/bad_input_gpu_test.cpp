// Bad input on the CUDA device (the emulated one in CI): running out of device memory (in the
// middle of a window, past a memory limit, while moving a model), non-finite data in an f32
// model without loss scaling, and counts past 2^32 in the device's window counters. The CPU side of
// each is in tests/cpu/bad_input_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/window_scalars.h"
#include "elementwise_checks.h"
#include "mlp_helpers.h"

namespace gradaccum::test {
namespace {

using autograd::Variable;
using optim::AccumulationWindow;
using optim::OverflowPolicy;
using optim::SGD;
using optim::SGDOptions;
using optim::StepReport;
using optim::WindowOptions;

// Sets a device memory limit for its scope; the previous one comes back whatever happens.
class MemoryLimit {
 public:
  explicit MemoryLimit(std::size_t bytes) : previous_(cuda_memory_limit()) {
    set_cuda_memory_limit(bytes);
  }
  ~MemoryLimit() { set_cuda_memory_limit(previous_); }
  MemoryLimit(const MemoryLimit&) = delete;
  MemoryLimit& operator=(const MemoryLimit&) = delete;

 private:
  std::size_t previous_;
};

// A micro-batch whose activations do not fit (a memory limit just above what the window and the
// micro-batch's inputs hold) fails with an OutOfMemoryError in the forward; the window keeps the
// micro-batches before it, takes the ones after it, and steps exactly as if the failed one had
// never been tried. No memory is kept.
TEST(BadInputGpu, OutOfMemoryMidWindowLeavesTheWindowIntact) {
  GA_REQUIRE_CUDA();
  constexpr std::int64_t kHidden = 64, kHuge = std::int64_t{1} << 14;
  auto make = [] {
    nn::Sequential m = make_mlp(1, kHidden, 1, 11);
    m.to(Device::CUDA);
    return m;
  };
  nn::Sequential model = make();
  nn::Sequential ref = make();
  AccumulationWindow window(model.parameters());
  AccumulationWindow ref_window(ref.parameters());
  SGD opt(model.parameters(), SGDOptions(0.05).momentum(0.9));
  SGD ref_opt(ref.parameters(), SGDOptions(0.05).momentum(0.9));
  nn::L1Loss mean;
  Tensor x = random_tensor({4, 1}, 1, DType::f32, Device::CUDA);
  Tensor y = random_tensor({4, 1}, 2, DType::f32, Device::CUDA);

  window.zero_grad();
  window.backward(mean(model(Variable(x.rows(0, 2))), Variable(y.rows(0, 2))));
  const std::size_t in_window = cuda_bytes_in_use();
  {
    Variable huge_x(Tensor::zeros({kHuge, 1}, DType::f32, Device::CUDA));
    Variable huge_y(Tensor::zeros({kHuge, 1}, DType::f32, Device::CUDA));
    // 1 MiB more: a [kHuge, kHidden] activation (4 MiB) does not fit.
    MemoryLimit limit(cuda_bytes_in_use() + (std::size_t{1} << 20));
    try {
      window.backward(mean(model(huge_x), huge_y));
      FAIL() << "a [" << kHuge << ", " << kHidden << "] activation was allocated";
    } catch (const OutOfMemoryError& e) {
      EXPECT_GE(e.bytes(), static_cast<std::size_t>(kHuge * kHidden) * 4) << e.what();
      EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(cuda_bytes_in_use(), in_window) << "the failed micro-batch kept device memory";
  EXPECT_EQ(window.micro_batches_submitted(), 1);
  window.backward(mean(model(Variable(x.rows(2, 4))), Variable(y.rows(2, 4))));
  const StepReport rep = opt.step(window);
  EXPECT_TRUE(rep.applied);
  EXPECT_EQ(rep.samples, 4);
  EXPECT_EQ(rep.micro_batches, 2);

  window_step(ref, ref_window, ref_opt, x.to(Device::CUDA), y.to(Device::CUDA), {2, 2},
              Reduction::Mean);
  EXPECT_LE(max_rel_diff(snapshot(model.parameters()), snapshot(ref.parameters())), 1e-6);
  // The next window trains normally.
  EXPECT_TRUE(
      window_step(model, window, opt, x.to(Device::CUDA), y.to(Device::CUDA), {4}, Reduction::Mean)
          .applied);
}

// An allocation no device can hold (1 TiB): the runtime's own failure becomes OutOfMemoryError,
// naming the bytes; nothing is counted.
TEST(BadInputGpu, AnAllocationNoDeviceHoldsIsOutOfMemory) {
  GA_REQUIRE_CUDA();
  const std::size_t in_use = cuda_bytes_in_use();
  try {
    Tensor t = Tensor::empty({std::int64_t{1} << 38}, DType::f32, Device::CUDA);
    ADD_FAILURE() << "a 1 TiB tensor was allocated";
  } catch (const OutOfMemoryError& e) {
    EXPECT_EQ(e.bytes(), std::size_t{1} << 40);
    EXPECT_NE(std::string(e.what()).find("out of memory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cuda_bytes_in_use(), in_use);
}

TEST(BadInputGpu, AMemoryLimitRefusesWhatWouldPassIt) {
  GA_REQUIRE_CUDA();
  const std::size_t in_use = cuda_bytes_in_use();
  {
    const std::size_t cap = in_use + (std::size_t{3} << 18);  // 768 KiB more
    MemoryLimit limit(cap);
    EXPECT_EQ(cuda_memory_limit(), cap);
    Tensor fits = Tensor::zeros({1 << 17}, DType::f32, Device::CUDA);  // 512 KiB
    try {
      Tensor too_much = Tensor::zeros({1 << 17}, DType::f32, Device::CUDA);  // 512 KiB more
      ADD_FAILURE() << "expected OutOfMemoryError";
    } catch (const OutOfMemoryError& e) {
      EXPECT_EQ(e.bytes(), std::size_t{1} << 19);
      EXPECT_NE(std::string(e.what()).find("set_cuda_memory_limit"), std::string::npos) << e.what();
    }
    EXPECT_EQ(cuda_bytes_in_use(), in_use + (std::size_t{1} << 19)) << "the refusal kept bytes";
  }
  EXPECT_EQ(cuda_bytes_in_use(), in_use);
  Tensor after = Tensor::zeros({1 << 18}, DType::f32, Device::CUDA);  // no limit any more
  EXPECT_EQ(cuda_bytes_in_use(), in_use + (std::size_t{1} << 20));
}

// Moving or converting a model is all or nothing: the first layer fits, the second does not, and
// no parameter has moved (or changed dtype); without the limit the same call succeeds.
TEST(BadInputGpu, ModuleToThatRunsOutOfMemoryChangesNoParameter) {
  GA_REQUIRE_CUDA();
  nn::Sequential model = make_mlp(4, 8, 1 << 15, 3);  // fc2: 1 MiB of weights
  const auto before = snapshot(model.parameters());
  const std::size_t in_use = cuda_bytes_in_use();
  {
    MemoryLimit limit(in_use + (std::size_t{1} << 16));
    EXPECT_THROW(model.to(Device::CUDA), OutOfMemoryError);
  }
  EXPECT_EQ(cuda_bytes_in_use(), in_use) << "the failed move kept device memory";
  for (const auto& [name, p] : model.named_parameters())
    EXPECT_EQ(p.device(), Device::CPU) << name << " moved";
  model.to(Device::CUDA);
  for (const auto& [name, p] : model.named_parameters())
    EXPECT_EQ(p.device(), Device::CUDA) << name;
  {
    // Converting on the device: f16 copies of fc1 fit, fc2's do not.
    MemoryLimit limit(cuda_bytes_in_use() + (std::size_t{1} << 16));
    EXPECT_THROW(model.to(DType::f16), OutOfMemoryError);
  }
  for (const auto& [name, p] : model.named_parameters())
    EXPECT_EQ(p.dtype(), DType::f32) << name << " converted";
  EXPECT_EQ(snapshot(model.parameters()), before) << "the values changed";
}

Tensor with_value_at(const Tensor& t, std::size_t i, float value) {
  auto v = t.to_vector();
  v[i] = value;
  return Tensor::from_vector(v, t.shape(), t.dtype(), t.device());
}

// f32, no loss scaling, both policies: a NaN or infinite target in the second micro-batch is
// caught on the device (skip-step: the step is not applied; drop-micro-batch: that micro-batch
// is dropped), never applied.
TEST(BadInputGpu, NonFiniteTargetsInAnF32ModelAreNeverApplied) {
  GA_REQUIRE_CUDA();
  constexpr std::int64_t kIn = 4, kHidden = 6, kOut = 2;
  for (float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    for (OverflowPolicy policy : {OverflowPolicy::SkipStep, OverflowPolicy::DropMicroBatch}) {
      SCOPED_TRACE(std::to_string(bad) + ", " + optim::overflow_policy_name(policy));
      nn::Sequential model = make_mlp(kIn, kHidden, kOut, 5);
      model.to(Device::CUDA);
      AccumulationWindow window(model.parameters(), WindowOptions().overflow(policy));
      SGD opt(model.parameters(), SGDOptions(0.05).momentum(0.9));
      const auto before = snapshot(model.parameters());
      Tensor x = random_tensor({6, kIn}, 100, DType::f32, Device::CUDA);
      Tensor y =
          with_value_at(random_tensor({6, kOut}, 200, DType::f32, Device::CUDA), 4 * kOut + 1, bad);
      const StepReport rep = window_step(model, window, opt, x, y, {3, 3}, Reduction::Mean);
      if (policy == OverflowPolicy::SkipStep) {
        EXPECT_FALSE(rep.applied) << rep.str();
        EXPECT_EQ(snapshot(model.parameters()), before);
      } else {
        EXPECT_TRUE(rep.applied) << rep.str();
        EXPECT_EQ(rep.micro_batches_dropped, 1);
        EXPECT_EQ(rep.samples, 3);
        EXPECT_TRUE(std::isfinite(rep.loss)) << rep.str();
      }
      for (const auto& p : snapshot(model.parameters())) {
        for (float v : p)
          ASSERT_TRUE(std::isfinite(v));
      }
    }
  }
}

TEST(WindowScalarsCuda, StepRecordHoldsWhatTheStepLeft) {
  GA_REQUIRE_CUDA();
  ew::check_step_record(Device::CUDA);
}

// The device's window counters: 64-bit, exact past 2^32 samples and elements.
TEST(BadInputGpu, DeviceCountsPast2To32AreExact) {
  GA_REQUIRE_CUDA();
  Storage counts = make_window_counts(Device::CUDA);
  Tensor ls = Tensor::full({1}, 1.0f, DType::f32, Device::CUDA);
  Tensor inv = Tensor::full({1}, 1.0f, DType::f32, Device::CUDA);
  const LossScaleRule rule;
  constexpr std::uint64_t samples = 3'000'000'019ull;  // past 2^31; three of them past 2^33
  for (int i = 0; i < 3; ++i)
    window_count_micro_batch(counts, nullptr, samples, 3 * samples, ls, inv, rule);
  const WindowCounts c = read_window_counts(counts);
  EXPECT_EQ(c.micro_batches, 3u);
  EXPECT_EQ(c.samples, 3 * samples);
  EXPECT_EQ(c.elements, 9 * samples);
  Tensor gs = Tensor::zeros({1}, DType::f32, Device::CUDA);
  NonFiniteFlag skip(Device::CUDA);
  window_grad_scale(counts, WindowDivisor::Elements, nullptr, gs, skip);
  EXPECT_EQ(gs.to_vector()[0], static_cast<float>(1.0 / (9.0 * static_cast<double>(samples))));
  EXPECT_FALSE(skip.raised());
}

}  // namespace
}  // namespace gradaccum::test
