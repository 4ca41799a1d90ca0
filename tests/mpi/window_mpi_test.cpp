// Data parallelism: world N x micro-batches x accumulation against the single-process step of
// the same samples (every rank computes that reference itself), the same bits on every rank
// after every step (hashes), the same bits run to run, and the errors of ranks that disagree.
// Run under mpiexec with 1, 2, 3 and 4 ranks (tests/CMakeLists.txt); CUDA cases run on the
// emulated device in an emulator build and skip where there is no device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "dist/rank_agreement.h"
#include "mlp_helpers.h"
#include "mpi_world.h"

namespace gradaccum::test {
namespace {

using autograd::Variable;
using optim::AccumulationWindow;
using optim::Compensation;
using optim::LossScaling;
using optim::OverflowPolicy;
using optim::ParameterSync;
using optim::SGD;
using optim::SGDOptions;
using optim::StepReport;
using optim::WindowOptions;

constexpr std::int64_t kIn = 6, kHidden = 10, kOut = 3;

// A training run: each step's rows go to the ranks in rank order, rank r's share split into the
// micro-batch sizes split(step, r) (possibly none).
struct Case {
  Device device = Device::CPU;
  DType dtype = DType::f32;
  Reduction reduction = Reduction::Mean;
  WindowOptions window;
  SGDOptions sgd = SGDOptions(0.05).momentum(0.9);
  int steps = 3;
  bool deterministic = false;  // GemmConfig::deterministic (fixed chains, gradaccum's kernels)
  std::function<std::vector<std::int64_t>(int step, int rank, int world)> split;
  // A micro-batch whose first input is +inf (non-finite loss and gradients): {step, rank, index}.
  int inf_step = -1, inf_rank = -1, inf_micro_batch = -1;
  // Each rank's last micro-batch of a step goes through backward_last (overlapped windows).
  bool backward_last = false;
};

struct Result {
  std::vector<std::vector<float>> params;   // the model's parameters (f16 ones widened)
  std::vector<std::vector<float>> masters;  // the optimizer's f32 masters
  std::vector<StepReport> reports;
  std::vector<std::uint64_t> hashes;  // per parameter: the bytes of the value and the master
};

std::int64_t batch_rows(const Case& c, int step, int world) {
  std::int64_t rows = 0;
  for (int r = 0; r < world; ++r) {
    for (std::int64_t n : c.split(step, r, world))
      rows += n;
  }
  return rows;
}

// distributed: this rank's micro-batches only, in a window over the world; otherwise all ranks'
// micro-batches in rank order in one window of this process (the reference).
Result train(const Case& c, bool distributed) {
  dist::ProcessGroup& pg = world();
  const int n = pg.size();
  // Distributed ranks start from different weights: the window broadcasts rank 0's.
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, distributed ? 100 + 2 * pg.rank() : 100);
  model.to(c.dtype);
  model.to(c.device);
  GemmConfig gc;
  gc.deterministic = c.deterministic;
  model.set_gemm_config(gc);
  WindowOptions wo = c.window;
  if (distributed) wo.process_group(world_ptr());
  AccumulationWindow window(model.parameters(), wo);
  SGD opt(model.parameters(), c.sgd);
  nn::L1Loss loss_fn(c.reduction);
  Result out;
  for (int s = 0; s < c.steps; ++s) {
    const std::int64_t rows = batch_rows(c, s, n);
    std::vector<float> xv = random_values(rows * kIn, 5000 + s);
    const std::vector<float> yv = random_values(rows * kOut, 6000 + s);
    window.zero_grad();
    std::int64_t row = 0;
    for (int r = 0; r < n; ++r) {
      const std::vector<std::int64_t> sizes = c.split(s, r, n);
      for (std::size_t m = 0; m < sizes.size(); ++m) {
        if (s == c.inf_step && r == c.inf_rank && static_cast<int>(m) == c.inf_micro_batch) {
          xv[static_cast<std::size_t>(row * kIn)] = std::numeric_limits<float>::infinity();
        }
        if (!distributed || r == pg.rank()) {
          const std::int64_t b = sizes[m];
          Tensor x = Tensor::from_vector(
              std::vector<float>(xv.begin() + row * kIn, xv.begin() + (row + b) * kIn), {b, kIn},
              c.dtype, c.device);
          Tensor y = Tensor::from_vector(
              std::vector<float>(yv.begin() + row * kOut, yv.begin() + (row + b) * kOut), {b, kOut},
              c.dtype, c.device);
          Variable loss = loss_fn(model(Variable(std::move(x))), Variable(std::move(y)));
          const bool last =
              distributed ? m + 1 == sizes.size() : r + 1 == n && m + 1 == sizes.size();
          if (c.backward_last && last) {
            window.backward_last(loss);
          } else {
            window.backward(loss);
          }
        }
        row += sizes[m];
      }
    }
    out.reports.push_back(opt.step(window));
  }
  out.params = snapshot(model.parameters());
  for (std::size_t i = 0; i < model.parameters().size(); ++i) {
    out.masters.push_back(opt.master_weight(i).to_vector());
    out.hashes.push_back(dist::tensor_hash(model.parameters()[i].value()));
    out.hashes.push_back(dist::tensor_hash(opt.master_weight(i)));
  }
  return out;
}

// The distributed run against the single-process reference, and the same bits on every rank.
void expect_like_one_process(const Case& c, double tol) {
  const Result ref = train(c, false);
  const Result got = train(c, true);
  EXPECT_LT(max_rel_diff(got.params, ref.params), tol);
  EXPECT_LT(max_rel_diff(got.masters, ref.masters), tol);
  ASSERT_EQ(got.reports.size(), ref.reports.size());
  for (std::size_t s = 0; s < ref.reports.size(); ++s) {
    const StepReport& a = got.reports[s];
    const StepReport& b = ref.reports[s];
    EXPECT_EQ(a.applied, b.applied) << "step " << s;
    EXPECT_EQ(a.samples, b.samples) << "step " << s << ": the global true count";
    EXPECT_EQ(a.elements, b.elements) << "step " << s;
    EXPECT_EQ(a.micro_batches, b.micro_batches) << "step " << s;
    EXPECT_EQ(a.micro_batches_dropped, b.micro_batches_dropped) << "step " << s;
    EXPECT_EQ(a.loss_scale, b.loss_scale) << "step " << s;
    if (std::isfinite(b.loss)) {
      EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::fabs(b.loss) + 1e-6) << "step " << s;
    }
  }
  // Every rank holds the bits of rank 0.
  std::vector<std::uint64_t> all(got.hashes.size() * static_cast<std::size_t>(world().size()));
  world().allgather(got.hashes.data(), got.hashes.size() * sizeof(std::uint64_t), all.data());
  for (int r = 1; r < world().size(); ++r) {
    for (std::size_t i = 0; i < got.hashes.size(); ++i) {
      EXPECT_EQ(all[r * got.hashes.size() + i], all[i]) << "rank " << r << ", hash " << i;
    }
  }
}

// k micro-batches of `rows` rows on every rank.
Case even(int k, std::int64_t rows) {
  Case c;
  c.split = [k, rows](int, int, int) { return std::vector<std::int64_t>(k, rows); };
  return c;
}

// Uneven: rank r holds r % 3 + 1 micro-batches of different sizes, and at step 1 the last rank
// (of two or more) holds none.
Case uneven() {
  Case c;
  c.split = [](int step, int rank, int world) {
    if (step == 1 && world > 1 && rank == world - 1) return std::vector<std::int64_t>{};
    std::vector<std::int64_t> sizes;
    for (int m = 0; m <= rank % 3; ++m)
      sizes.push_back(1 + (3 * rank + 5 * m + step) % 7);
    return sizes;
  };
  return c;
}

constexpr double kF32Tol = 2e-5;
constexpr double kF16Tol = 2e-3;

std::vector<Device> devices() {
  std::vector<Device> d{Device::CPU};
  if (cuda_available()) d.push_back(Device::CUDA);
  return d;
}

std::string construction_error(const std::function<void()>& make) {
  try {
    make();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WindowMpi, MeanWithMomentumEqualsTheOneProcessStep) {
  for (Device d : devices()) {
    SCOPED_TRACE(device_name(d));
    Case c = even(2, 4);
    c.device = d;
    expect_like_one_process(c, kF32Tol);
  }
}

TEST(WindowMpi, SumWithNesterovEqualsTheOneProcessStep) {
  Case c = even(3, 2);
  c.reduction = Reduction::Sum;
  c.sgd = SGDOptions(0.002).momentum(0.9).nesterov(true).weight_decay(0.01);
  expect_like_one_process(c, kF32Tol);
}

TEST(WindowMpi, UnevenSharesAndARankWithoutSamples) {
  for (Device d : devices()) {
    for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
      SCOPED_TRACE(std::string(device_name(d)) + " " + reduction_name(r));
      Case c = uneven();
      c.device = d;
      c.reduction = r;
      c.sgd = SGDOptions(r == Reduction::Sum ? 0.005 : 0.05).momentum(0.9);
      expect_like_one_process(c, kF32Tol);
    }
  }
}

TEST(WindowMpi, KahanAndExactEqualTheOneProcessStep) {
  for (Device d : devices()) {
    for (Compensation comp : {Compensation::Kahan, Compensation::Exact}) {
      SCOPED_TRACE(std::string(device_name(d)) + " " + optim::compensation_name(comp));
      Case c = uneven();
      c.device = d;
      c.window.compensation(comp);
      expect_like_one_process(c, kF32Tol);
    }
  }
}

TEST(WindowMpi, MicroBatchNormalizationDividesByTheGlobalMicroBatchCount) {
  Case c = even(2, 3);
  c.window.normalization(optim::Normalization::MicroBatch);
  expect_like_one_process(c, kF32Tol);
}

// An overflow on the last rank only: under SkipStep every rank skips the step and backs the
// scale off; under DropMicroBatch only that micro-batch is left out of the global count.
TEST(WindowMpi, F16DynamicLossScaleWithAnOverflowOnOneRank) {
  for (Device d : devices()) {
    for (OverflowPolicy p : {OverflowPolicy::SkipStep, OverflowPolicy::DropMicroBatch}) {
      SCOPED_TRACE(std::string(device_name(d)) + " " + optim::overflow_policy_name(p));
      Case c = uneven();
      c.device = d;
      c.dtype = DType::f16;
      c.window.loss_scaling(LossScaling::dynamic(1024.0f, 2.0f, 0.5f, 2)).overflow(p);
      c.steps = 4;
      c.inf_step = 2;
      c.inf_rank = world().size() - 1;
      c.inf_micro_batch = 0;
      expect_like_one_process(c, kF16Tol);
    }
  }
}

// Exact sums of deterministic micro-batch gradients: the distributed step has the bytes of the
// one-process step of the same micro-batches, so every world size trains to the same bytes.
TEST(WindowMpi, ExactDeterministicHasTheOneProcessBytesAtAnyWorldSize) {
  for (Device d : devices()) {
    for (OverflowPolicy p : {OverflowPolicy::SkipStep, OverflowPolicy::DropMicroBatch}) {
      SCOPED_TRACE(std::string(device_name(d)) + " " + optim::overflow_policy_name(p));
      Case c = uneven();
      c.device = d;
      c.deterministic = true;
      c.window.compensation(Compensation::Exact).overflow(p);
      c.inf_step = 2;  // and one non-finite micro-batch, on the last rank
      c.inf_rank = world().size() - 1;
      c.inf_micro_batch = 0;
      c.steps = 4;
      const Result ref = train(c, false);
      const Result got = train(c, true);
      EXPECT_EQ(got.hashes, ref.hashes);
      for (std::size_t s = 0; s < ref.reports.size(); ++s) {
        EXPECT_EQ(got.reports[s].applied, ref.reports[s].applied) << "step " << s;
        EXPECT_EQ(got.reports[s].loss_sum, ref.reports[s].loss_sum) << "step " << s;
      }
    }
  }
}

// Overlap: buckets reduced during the last backward give the bytes of the one reduction at the
// step, whatever the bucket size (one parameter a bucket, a few, all in one), with uneven
// shares and a rank without samples (it starts every bucket at the step).
TEST(WindowMpi, OverlappedBucketsGiveTheBytesOfOneReduction) {
  for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
    Case plain = uneven();
    plain.reduction = r;
    plain.backward_last = true;
    const Result one = train(plain, true);
    for (std::size_t bucket : {std::size_t{1}, std::size_t{200}, std::size_t{1} << 20}) {
      SCOPED_TRACE(std::string(reduction_name(r)) + ", buckets of " + std::to_string(bucket) +
                   " bytes");
      Case c = plain;
      c.window.overlap(true).bucket_bytes(bucket);
      const Result got = train(c, true);
      EXPECT_EQ(got.hashes, one.hashes);
      for (std::size_t s = 0; s < one.reports.size(); ++s) {
        EXPECT_EQ(got.reports[s].samples, one.reports[s].samples) << "step " << s;
        EXPECT_EQ(got.reports[s].loss_sum, one.reports[s].loss_sum) << "step " << s;
      }
      expect_like_one_process(c, kF32Tol);
    }
  }
}

TEST(WindowMpi, OverlapCountsBucketsAndCoversAParameterOffTheGraph) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
  std::vector<Variable> params = model.parameters();
  // A parameter no micro-batch reaches: never reported final, still reduced (zero) every step.
  params.emplace_back(random_tensor({5}, 8), true, "unused");
  AccumulationWindow plain_window(params, WindowOptions().process_group(world_ptr()));
  AccumulationWindow window(
      params, WindowOptions().process_group(world_ptr()).overlap(true).bucket_bytes(1));
  EXPECT_EQ(plain_window.reduction_buckets(), 0u);
  EXPECT_EQ(window.reduction_buckets(), params.size());
  SGD opt(params, SGDOptions(0.1));
  nn::L1Loss loss_fn(Reduction::Mean);
  const int me = world().rank();
  for (int step = 0; step < 2; ++step) {
    window.zero_grad();
    window.backward(loss_fn(model(Variable(random_tensor({2, kIn}, 10 * step + me))),
                            Variable(random_tensor({2, kOut}, 20 + 10 * step + me))));
    window.backward_last(loss_fn(model(Variable(random_tensor({3, kIn}, 40 + 10 * step + me))),
                                 Variable(random_tensor({3, kOut}, 50 + 10 * step + me))));
    // The last micro-batch is in: another one is an error, the step is not.
    try {
      window.backward(loss_fn(model(Variable(random_tensor({1, kIn}, 3))),
                              Variable(random_tensor({1, kOut}, 4))));
      ADD_FAILURE() << "a micro-batch after backward_last must throw";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("last micro-batch was submitted"), std::string::npos)
          << e.what();
    }
    const StepReport rep = opt.step(window);
    EXPECT_TRUE(rep.applied);
    EXPECT_EQ(rep.samples, 5 * world().size());
    EXPECT_EQ(params.back().grad().to_vector(), std::vector<float>(5, 0.0f));
  }
}

TEST(WindowMpi, OverlapNeedsGradientsThatAreFinalAfterTheBackward) {
  for (int variant = 0; variant < 2; ++variant) {
    const std::string e = construction_error([&] {
      nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
      WindowOptions o = WindowOptions().process_group(world_ptr()).overlap(true);
      if (variant == 0) o.compensation(Compensation::Kahan);
      if (variant == 1) o.overflow(OverflowPolicy::DropMicroBatch);
      AccumulationWindow w(model.parameters(), o);
    });
    EXPECT_NE(e.find("WindowOptions::overlap: needs a CPU window with plain f32 sums and the "
                     "SkipStep overflow policy"),
              std::string::npos)
        << e;
  }
}

TEST(WindowMpi, SameBitsRunToRun) {
  for (Device d : devices()) {
    SCOPED_TRACE(device_name(d));
    Case c = uneven();
    c.device = d;
    const Result a = train(c, true);
    const Result b = train(c, true);
    EXPECT_EQ(a.hashes, b.hashes);
    for (std::size_t i = 0; i < a.params.size(); ++i) {
      EXPECT_EQ(std::memcmp(a.params[i].data(), b.params[i].data(), a.params[i].size() * 4), 0);
    }
  }
}

// Everything a distributed step does is also right at world 1 (no communication at all).
TEST(WindowMpi, ReducedBytesCoverEveryGradientOnce) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
  AccumulationWindow window(model.parameters(), WindowOptions().process_group(world_ptr()));
  std::size_t floats = 0;
  for (const Variable& p : model.parameters())
    floats += static_cast<std::size_t>(p.value().numel());
  // Header (11 words) and the loss pair, then the gradients, two floats to a word.
  EXPECT_GE(window.reduced_bytes(), floats * 4);
  EXPECT_LE(window.reduced_bytes(), floats * 4 + 13 * 8 + model.parameters().size() * 4);
}

TEST(WindowMpi, NoSampleOnAnyRankIsAnErrorOnEveryRank) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
  AccumulationWindow window(model.parameters(), WindowOptions().process_group(world_ptr()));
  SGD opt(model.parameters(), SGDOptions(0.1));
  window.zero_grad();
  try {
    opt.step(window);
    ADD_FAILURE() << "a step without samples must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no rank's window holds a sample"), std::string::npos)
        << e.what();
  }
  // The window is still usable: rank 0 alone submits, every rank steps.
  window.zero_grad();
  if (world().rank() == 0) {
    nn::L1Loss loss_fn(Reduction::Mean);
    window.backward(loss_fn(model(Variable(random_tensor({2, kIn}, 3))),
                            Variable(random_tensor({2, kOut}, 4))));
  }
  const StepReport r = opt.step(window);
  EXPECT_TRUE(r.applied);
  EXPECT_EQ(r.samples, 2);
}

TEST(WindowMpi, RanksMixingMeanAndSumIsAnErrorOnEveryRank) {
  if (world().size() < 2) GTEST_SKIP() << "needs two ranks";
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
  AccumulationWindow window(model.parameters(), WindowOptions().process_group(world_ptr()));
  SGD opt(model.parameters(), SGDOptions(0.1));
  window.zero_grad();
  nn::L1Loss loss_fn(world().rank() == 0 ? Reduction::Mean : Reduction::Sum);
  window.backward(
      loss_fn(model(Variable(random_tensor({2, kIn}, 3))), Variable(random_tensor({2, kOut}, 4))));
  try {
    opt.step(window);
    ADD_FAILURE() << "mixed reductions must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mix the mean and sum"), std::string::npos) << e.what();
  }
}

TEST(WindowMpi, ADifferentConfigurationIsReportedAtConstruction) {
  if (world().size() < 2) GTEST_SKIP() << "needs two ranks";
  const bool odd = world().rank() == 1;
  // Options.
  std::string e = construction_error([&] {
    nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
    AccumulationWindow w(model.parameters(),
                         WindowOptions()
                             .process_group(world_ptr())
                             .compensation(odd ? Compensation::Kahan : Compensation::None));
  });
  EXPECT_NE(e.find("the window's configuration differs between ranks: rank 0 has "
                   "'accumulation: naive', rank 1 has 'accumulation: kahan'"),
            std::string::npos)
      << e;
  // Shapes.
  e = construction_error([&] {
    nn::Sequential model = make_mlp(kIn, odd ? kHidden + 1 : kHidden, kOut, 1);
    AccumulationWindow w(model.parameters(), WindowOptions().process_group(world_ptr()));
  });
  EXPECT_NE(e.find("rank 0 has 'parameter 0 'weight': [10, 6] f32', rank 1 has "
                   "'parameter 0 'weight': [11, 6] f32'"),
            std::string::npos)
      << e;
  // Dtypes.
  e = construction_error([&] {
    nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
    if (odd) model.to(DType::f16);
    AccumulationWindow w(model.parameters(), WindowOptions().process_group(world_ptr()));
  });
  EXPECT_NE(e.find("f16"), std::string::npos) << e;
  // Loss scaling.
  e = construction_error([&] {
    nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
    AccumulationWindow w(model.parameters(),
                         WindowOptions()
                             .process_group(world_ptr())
                             .loss_scaling(odd ? LossScaling::dynamic() : LossScaling::none()));
  });
  EXPECT_NE(e.find("loss scaling"), std::string::npos) << e;
}

TEST(WindowMpi, VerifyReportsTheFirstParameterThatDiffers) {
  // Same seed everywhere: verified.
  EXPECT_EQ(construction_error([&] {
              nn::Sequential model = make_mlp(kIn, kHidden, kOut, 7);
              AccumulationWindow w(
                  model.parameters(),
                  WindowOptions().process_group(world_ptr()).parameter_sync(ParameterSync::Verify));
            }),
            "");
  if (world().size() < 2) return;
  // fc2.bias differs on the last rank only.
  const std::string e = construction_error([&] {
    nn::Sequential model = make_mlp(kIn, kHidden, kOut, 7);
    if (world().rank() == world().size() - 1) {
      model.parameters()[3].value().copy_from(random_tensor({kOut}, 99));
    }
    AccumulationWindow w(
        model.parameters(),
        WindowOptions().process_group(world_ptr()).parameter_sync(ParameterSync::Verify));
  });
  EXPECT_NE(e.find("parameter 3 'bias'' differs between rank 0 and rank " +
                   std::to_string(world().size() - 1)),
            std::string::npos)
      << e;
}

TEST(WindowMpi, BroadcastGivesEveryRankRankZerosParameters) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 31 + world().rank());
  AccumulationWindow w(model.parameters(), WindowOptions().process_group(world_ptr()));
  nn::Sequential rank0 = make_mlp(kIn, kHidden, kOut, 31);
  for (std::size_t i = 0; i < model.parameters().size(); ++i) {
    EXPECT_EQ(model.parameters()[i].value().to_vector(), rank0.parameters()[i].value().to_vector());
  }
}

// CPU windows keep their gradients in the reduction buffer; the parameters outlive the window,
// so its destructor gives them memory of their own, values kept (ASan would see a dangling one).
TEST(WindowMpi, GradientsOutliveTheWindowThatHeldThem) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 5);
  std::vector<std::vector<float>> grads;
  {
    AccumulationWindow window(model.parameters(), WindowOptions().process_group(world_ptr()));
    nn::L1Loss loss_fn(Reduction::Sum);
    window.zero_grad();
    window.backward(loss_fn(model(Variable(random_tensor({3, kIn}, 8))),
                            Variable(random_tensor({3, kOut}, 9))));
    grads = snapshot(model.parameters(), true);
  }
  EXPECT_EQ(snapshot(model.parameters(), true), grads);
  // A second window over the same parameters starts from them, and steps.
  AccumulationWindow again(model.parameters(), WindowOptions().process_group(world_ptr()));
  SGD opt(model.parameters(), SGDOptions(0.1));
  again.zero_grad();
  nn::L1Loss loss_fn(Reduction::Mean);
  again.backward(loss_fn(model(Variable(random_tensor({2, kIn}, 10))),
                         Variable(random_tensor({2, kOut}, 11))));
  EXPECT_TRUE(opt.step(again).applied);
}

}  // namespace
}  // namespace gradaccum::test
