// Bad input at the public API: every misuse ends in a gradaccum::Error whose message names what
// was wrong (and what was expected), and leaves the engine usable. Cases already checked
// elsewhere are not repeated here (see the list at the end of this file); the categories this
// file adds: tensors and shapes at their limits, modules and windows built wrongly, weights that
// do not match the model, zero-sample micro-batches, non-finite data in f32 models without loss
// scaling, and a window of a million micro-batches.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <typeinfo>
#include <vector>

#include <unistd.h>

#include "core/npy.h"
#include "kernels/window_scalars.h"
#include "mlp_helpers.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GA_BAD_INPUT_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GA_BAD_INPUT_SANITIZED 1
#endif

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

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr std::int64_t kIn = 5, kHidden = 7, kOut = 3;

// Runs f, which must throw gradaccum::Error, and returns the message (empty, with a failure,
// when f does not throw or throws something else).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a " << typeid(e).name() << ", not a gradaccum::Error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

// Whether `message` holds every part (the thing that was wrong, what was expected, ...).
::testing::AssertionResult mentions(const std::string& message,
                                    std::initializer_list<const char*> parts) {
  for (const char* part : parts) {
    if (message.find(part) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "'" << message << "' does not mention '" << part << "'";
    }
  }
  if (message.find('\n') != std::string::npos) {
    return ::testing::AssertionFailure() << "'" << message << "' spans several lines";
  }
  return ::testing::AssertionSuccess();
}

// ---- tensors and shapes --------------------------------------------------------------------

TEST(BadInput, ShapesAtTheLimitsOfInt64AndOfByteCounts) {
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  // The element count overflows int64 only just: rejected, not wrapped (to 0 or a negative).
  EXPECT_TRUE(mentions(error_of([&] { Shape({max / 2 + 1, 2}); }), {"[", "int64"}));
  EXPECT_TRUE(mentions(error_of([&] {
                         Shape({std::int64_t{1} << 32, std::int64_t{1} << 31});
                       }),
                       {"int64"}));
  EXPECT_EQ(Shape({max / 2, 2}).numel(), max - 1);  // the largest counts are fine
  EXPECT_EQ(Shape({max, 0}).numel(), 0);            // a zero dimension: no overflow at all
  EXPECT_TRUE(mentions(error_of([&] { Shape({3, -2}); }), {"dimension 1", ">= 0", "-2"}));
  EXPECT_TRUE(mentions(error_of([&] { Shape({1, 1, 1, 1, 1}); }), {"at most 4", "5"}));
  // The count fits int64 but the bytes do not fit size_t: rejected before any allocation.
  EXPECT_TRUE(
      mentions(error_of([&] { Tensor::empty({max}, DType::f32); }), {"too large", "bytes"}));
  EXPECT_TRUE(mentions(error_of([&] { Tensor::zeros({std::int64_t{1} << 62}, DType::f32); }),
                       {"too large"}));
  // Byte counts just below 2^64 fit size_t, but rounded up to the host allocator's alignment
  // they would wrap to a tiny block: an OutOfMemoryError, never a tensor without its memory.
  for (const Shape& s : {Shape({max / 2}), Shape({(max - 15) / 4, 2})}) {
    try {
      Tensor t = Tensor::empty(s, DType::f32);
      ADD_FAILURE() << "allocated " << t.nbytes() << " bytes for " << s.str();
    } catch (const OutOfMemoryError& e) {
      EXPECT_GT(e.bytes(), std::numeric_limits<std::size_t>::max() - 64) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::to_string(e.bytes())), std::string::npos);
    }
  }
  EXPECT_TRUE(mentions(error_of([&] {
                         Shape s({1, 2});
                         static_cast<void>(s[2]);
                       }),
                       {"index 2", "rank 2"}));
}

TEST(BadInput, HugeHostTensorsAreOutOfMemoryErrorsNamingTheBytes) {
#if defined(GA_BAD_INPUT_SANITIZED)
  GTEST_SKIP() << "sanitizer allocators abort on impossible sizes instead of failing";
#else
  // 2^61 elements: the shape and the byte count (2^62 or 2^63) are valid, no host has them.
  const std::int64_t n = std::int64_t{1} << 61;
  for (DType dtype : {DType::f32, DType::f16}) {
    const std::size_t bytes = static_cast<std::size_t>(n) * dtype_size(dtype);
    // Every way to make a tensor: empty, zeros, full and seeded random values.
    const std::vector<std::function<void()> > makers = {
        [&] { Tensor::empty({n}, dtype); }, [&] { Tensor::zeros({n}, dtype); },
        [&] { Tensor::full({n}, 1.0f, dtype); }, [&] { uniform({n}, -1.0f, 1.0f, 7, dtype); },
        [&] { normal({n}, 0.0f, 1.0f, 7, dtype); }};
    for (const auto& make : makers) {
      try {
        make();
        ADD_FAILURE() << "allocated " << bytes << " bytes";
      } catch (const OutOfMemoryError& e) {
        EXPECT_GE(e.bytes(), static_cast<std::size_t>(n)) << e.what();
        EXPECT_NE(std::string(e.what()).find("out of"), std::string::npos) << e.what();
      } catch (const std::exception& e) {
        ADD_FAILURE() << "not an OutOfMemoryError: " << e.what();
      }
    }
  }
  // And the library still allocates afterwards.
  EXPECT_EQ(Tensor::full({3}, 2.0f).to_vector(), (std::vector<float>{2.0f, 2.0f, 2.0f}));
#endif
}

TEST(BadInput, TensorMisuseNamesTheTensor) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(
      mentions(error_of([&] { static_cast<void>(t.data<std::uint16_t>()); }), {"2 bytes", "f32"}));
  EXPECT_TRUE(mentions(error_of([&] {
                         static_cast<void>(std::move(t).reshape({4, 2}));
                       }),
                       {"reshape", "[2, 3]", "[4, 2]"}));
  Tensor u = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_TRUE(mentions(error_of([&] { static_cast<void>(u.rows(1, 3)); }), {"rows [1, 3)"}));
  EXPECT_TRUE(mentions(error_of([&] { static_cast<void>(u.rows(-1, 1)); }), {"rows [-1, 1)"}));
  EXPECT_TRUE(mentions(error_of([&] { static_cast<void>(u.size(2)); }), {"index 2"}));
  Tensor undefined;
  EXPECT_TRUE(mentions(error_of([&] { static_cast<void>(undefined.to_vector()); }), {"undefined"}));
  EXPECT_TRUE(mentions(error_of([&] { static_cast<void>(undefined.clone()); }), {"undefined"}));
  EXPECT_TRUE(mentions(error_of([&] {
                         u.copy_from(Tensor::zeros({2, 3}, DType::f16));
                       }),
                       {"dtype", "f32", "f16"}));
  EXPECT_TRUE(mentions(error_of([&] { Tensor::from_vector({1.0f}, {0}); }), {"[0]", "needs 0"}));
  // u is untouched by all of it.
  EXPECT_EQ(u.to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

// ---- modules, variables and losses ----------------------------------------------------------

TEST(BadInput, ModulesAndOpsRejectWrongShapesNamingThem) {
  EXPECT_THROW(nn::Linear(3, 0), Error);
  EXPECT_THROW(nn::Linear(-1, 3), Error);
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
  // Rank 1 and rank 3 inputs to a Linear, and a wrong feature count.
  EXPECT_TRUE(mentions(error_of([&] { model(Variable(random_tensor({kIn}, 1))); }), {"[5]"}));
  EXPECT_TRUE(mentions(error_of([&] {
                         model(Variable(random_tensor({2, 2, kIn}, 1)));
                       }),
                       {"[2, 2, 5]"}));
  EXPECT_TRUE(mentions(error_of([&] {
                         model(Variable(random_tensor({2, kIn + 2}, 1)));
                       }),
                       {"[2, 7]"}));
  // A target of another shape than the prediction.
  Variable pred = model(Variable(random_tensor({4, kIn}, 2)));
  EXPECT_TRUE(mentions(error_of([&] {
                         nn::L1Loss()(pred, Variable(random_tensor({4, kOut + 1}, 3)));
                       }),
                       {"[4, 3]", "[4, 4]"}));
  EXPECT_TRUE(mentions(error_of([&] {
                         nn::L1Loss()(pred, Variable(random_tensor({kOut, 4}, 3)));
                       }),
                       {"[4, 3]", "[3, 4]"}));
  EXPECT_THROW(nn::L1Loss()(pred, Variable()), Error);
  // item() of a non-scalar, loss_sum() of a non-loss, ops on undefined Variables.
  EXPECT_TRUE(
      mentions(error_of([&] { static_cast<void>(pred.item()); }), {"one-element", "[4, 3]"}));
  EXPECT_TRUE(mentions(error_of([&] { static_cast<void>(pred.loss_sum()); }), {"not a loss"}));
  EXPECT_THROW(autograd::relu(Variable()), Error);
  EXPECT_THROW(Variable{Tensor()}, Error);
  // The model still works.
  Variable loss = nn::L1Loss()(model(Variable(random_tensor({4, kIn}, 2))),
                               Variable(random_tensor({4, kOut}, 3)));
  EXPECT_TRUE(std::isfinite(loss.item()));
}

TEST(BadInput, ModuleConstructionErrors) {
  nn::Sequential seq;
  EXPECT_TRUE(mentions(error_of([&] { seq.push_back({"a.b", nn::ReLU()}); }), {"'a.b'"}));
  seq.push_back({"fc", nn::Linear(2, 2)});
  EXPECT_TRUE(mentions(error_of([&] {
                         seq.push_back({"fc", nn::Linear(2, 2)});
                       }),
                       {"'fc'", "twice"}));
  EXPECT_THROW(seq.push_back(std::shared_ptr<nn::Module>()), Error);
  EXPECT_EQ(seq.size(), 1u);
}

// A scratch folder removed at the end.
class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(std::filesystem::temp_directory_path() /
              ("gradaccum_bad_input_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(BadInput, LoadingWeightsThatDoNotMatchLeavesTheModelUnchanged) {
  TempDir dir("weights");
  nn::Sequential saved = make_mlp(kIn, kHidden, kOut, 1);
  saved.save(dir.str());
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 2);
  const auto before = snapshot(model.parameters());

  // fc2.weight of the wrong shape: the message names the file, the parameter and both shapes;
  // fc1 (loaded first) must not have been overwritten.
  save_npy(dir.file("fc2.weight.npy"), Tensor::zeros({kOut, kHidden + 1}));
  EXPECT_TRUE(mentions(error_of([&] { model.load(dir.str()); }),
                       {"fc2.weight.npy", "'fc2.weight'", "[3, 8]", "[3, 7]"}));
  EXPECT_EQ(snapshot(model.parameters()), before) << "a failed load changed the model";

  // A missing file, a malformed one, one of rank 0 where a vector is expected.
  std::filesystem::remove(dir.file("fc2.weight.npy"));
  EXPECT_TRUE(mentions(error_of([&] { model.load(dir.str()); }), {"fc2.weight.npy"}));
  EXPECT_EQ(snapshot(model.parameters()), before);
  { std::ofstream(dir.file("fc2.weight.npy"), std::ios::binary) << "\x93NUMPY\x01"; }
  EXPECT_TRUE(mentions(error_of([&] { model.load(dir.str()); }), {"fc2.weight.npy"}));
  EXPECT_EQ(snapshot(model.parameters()), before);
  save_npy(dir.file("fc2.weight.npy"), saved.named_parameters()[2].second.value());
  save_npy(dir.file("fc2.bias.npy"), Tensor::zeros({}));
  EXPECT_TRUE(mentions(error_of([&] { model.load(dir.str()); }), {"fc2.bias", "[]", "[3]"}));
  EXPECT_EQ(snapshot(model.parameters()), before);
  EXPECT_THROW(model.load(dir.file("no_such_folder")), Error);
  EXPECT_EQ(snapshot(model.parameters()), before);

  // A matching folder loads (f16 files convert to the parameter's dtype).
  save_npy(dir.file("fc2.bias.npy"), saved.named_parameters()[3].second.value().to(DType::f16));
  model.load(dir.str());
  auto got = snapshot(model.parameters());
  auto want = snapshot(saved.parameters());
  EXPECT_EQ(got[0], want[0]);
  EXPECT_EQ(got[2], want[2]);
}

// ---- windows and optimizers built wrongly ---------------------------------------------------

TEST(BadInput, WindowAndOptimizerConstructionErrors) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 1);
  auto params = model.parameters();
  EXPECT_TRUE(mentions(error_of([&] { AccumulationWindow({}); }), {"no parameters"}));
  auto twice = params;
  twice.push_back(params[1]);
  EXPECT_TRUE(mentions(error_of([&] { AccumulationWindow w(twice); }), {"'bias'", "twice"}));
  Variable frozen(random_tensor({2}, 1), /*requires_grad=*/false, "frozen");
  EXPECT_TRUE(mentions(error_of([&] { AccumulationWindow w({frozen}); }), {"requires grad"}));
  Variable not_leaf = model(Variable(random_tensor({2, kIn}, 1)));
  EXPECT_THROW(AccumulationWindow w({not_leaf}), Error);
  EXPECT_THROW(SGD({frozen}, SGDOptions(0.1)), Error);

  // Loss scales: zero, negative, NaN, inf; dynamic rules that cannot work.
  for (float bad : {0.0f, -1.0f, kNaN, kInf}) {
    EXPECT_TRUE(mentions(error_of([&] {
                           AccumulationWindow w(
                               params, WindowOptions().loss_scaling(LossScaling::fixed(bad)));
                         }),
                         {"loss scale"}))
        << bad;
  }
  EXPECT_TRUE(mentions(error_of([&] {
                         AccumulationWindow w(params, WindowOptions().loss_scaling(
                                                          LossScaling::dynamic(1024, 1.0f)));
                       }),
                       {"growth", "1"}));
  EXPECT_THROW(AccumulationWindow w(
                   params, WindowOptions().loss_scaling(LossScaling::dynamic(1024, 2.0f, 1.5f))),
               Error);
  EXPECT_THROW(AccumulationWindow w(
                   params, WindowOptions().loss_scaling(LossScaling::dynamic(1024, 2.0f, 0.5f, 0))),
               Error);

  // An optimizer whose parameters the window does not hold; set_lr with a bad value.
  nn::Sequential other = make_mlp(kIn, kHidden, kOut, 2);
  AccumulationWindow window(params);
  SGD opt(other.parameters(), SGDOptions(0.1));
  window.backward(nn::L1Loss()(model(Variable(random_tensor({2, kIn}, 1))),
                               Variable(random_tensor({2, kOut}, 2))));
  EXPECT_TRUE(mentions(error_of([&] { opt.step(window); }), {"not in the window"}));
  EXPECT_TRUE(mentions(error_of([&] { opt.set_lr(-1.0); }), {"learning rate", "-1"}));
  EXPECT_EQ(opt.options().lr(), 0.1);
  EXPECT_THROW(static_cast<void>(opt.master_weight(4)), Error);
  // The window was not stepped by the failed call: the right optimizer steps it.
  SGD right(params, SGDOptions(0.1));
  EXPECT_TRUE(right.step(window).applied);
}

TEST(BadInput, ZeroSampleMicroBatchesAreRejectedAndChangeNothing) {
  for (OverflowPolicy policy : {OverflowPolicy::SkipStep, OverflowPolicy::DropMicroBatch}) {
    for (optim::Normalization norm :
         {optim::Normalization::Window, optim::Normalization::MicroBatch}) {
      nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
      AccumulationWindow window(model.parameters(),
                                WindowOptions().overflow(policy).normalization(norm));
      Tensor x = random_tensor({4, kIn}, 1), y = random_tensor({4, kOut}, 2);
      nn::L1Loss mean;
      window.backward(mean(model(Variable(x.clone())), Variable(y.clone())));
      const auto grads = snapshot(model.parameters(), true);
      // An empty micro-batch holds nothing to average, and would count as one of k for the
      // per-micro-batch normalisation: an error, not a silent 1/0 or a wrong k.
      Variable empty =
          mean(model(Variable(Tensor::zeros({0, kIn}))), Variable(Tensor::zeros({0, kOut})));
      EXPECT_TRUE(mentions(error_of([&] { window.backward(empty); }), {"no samples"}));
      EXPECT_EQ(snapshot(model.parameters(), true), grads);
      EXPECT_EQ(window.micro_batches_submitted(), 1);
      EXPECT_EQ(window.counts().micro_batches, 1u);
      SGD opt(model.parameters(), SGDOptions(0.1));
      const StepReport rep = opt.step(window);
      EXPECT_TRUE(rep.applied);
      EXPECT_EQ(rep.micro_batches, 1);
      EXPECT_EQ(rep.samples, 4);
    }
  }
}

// ---- non-finite data in an f32 model without loss scaling -----------------------------------

Tensor with_value_at(const Tensor& t, std::size_t i, float value) {
  auto v = t.to_vector();
  v[i] = value;
  return Tensor::from_vector(v, t.shape(), t.dtype(), t.device());
}

struct PoisonCase {
  const char* what;
  bool poison_input;  // else the target
  float value;
};

// A step over the batch with one bad value must not be applied (f32, no loss scaling, skip-step:
// the default window), must say so, and must leave the parameters and the optimizer's state as
// they were: the next clean steps are those of a model that never saw the bad batch.
TEST(BadInput, NonFiniteDataInAnF32ModelSkipsTheStep) {
  const std::vector<PoisonCase> cases = {
      {"NaN target", false, kNaN}, {"+inf target", false, kInf}, {"-inf target", false, -kInf},
      {"NaN input", true, kNaN},   {"inf input", true, kInf},    {"-inf input", true, -kInf}};
  for (const PoisonCase& c : cases) {
    for (Reduction r : {Reduction::Mean, Reduction::Sum}) {
      SCOPED_TRACE(std::string(c.what) + ", " + reduction_name(r));
      nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
      AccumulationWindow window(model.parameters());
      SGD opt(model.parameters(), SGDOptions(0.05).momentum(0.9));
      const auto before = snapshot(model.parameters());
      Tensor x = random_tensor({8, kIn}, 1000), y = random_tensor({8, kOut}, 2000);
      if (c.poison_input) {
        x = with_value_at(x, 6 * kIn + 2, c.value);  // row 6: the second micro-batch
      } else {
        y = with_value_at(y, 6 * kOut + 1, c.value);
      }
      const StepReport bad = window_step(model, window, opt, x, y, {4, 4}, r);
      EXPECT_FALSE(bad.applied);
      EXPECT_EQ(bad.str().rfind("skipped", 0), 0u) << bad.str();
      EXPECT_EQ(snapshot(model.parameters()), before);
      for (const auto& p : snapshot(model.parameters())) {
        for (float v : p)
          ASSERT_TRUE(std::isfinite(v));
      }

      // Two clean steps: equal to those of a fresh model and optimizer.
      nn::Sequential ref = make_mlp(kIn, kHidden, kOut, 77);
      AccumulationWindow ref_window(ref.parameters());
      SGD ref_opt(ref.parameters(), SGDOptions(0.05).momentum(0.9));
      for (int s = 0; s < 2; ++s) {
        Tensor xs = random_tensor({8, kIn}, 3000 + s), ys = random_tensor({8, kOut}, 4000 + s);
        EXPECT_TRUE(window_step(model, window, opt, xs, ys, {4, 4}, r).applied);
        window_step(ref, ref_window, ref_opt, xs, ys, {4, 4}, r);
      }
      EXPECT_EQ(snapshot(model.parameters()), snapshot(ref.parameters()));
    }
  }
}

// Drop-micro-batch without loss scaling: the micro-batch holding the bad value is dropped (its
// samples not counted), the others are applied.
TEST(BadInput, NonFiniteDataWithDropMicroBatchDropsOnlyThatMicroBatch) {
  for (const PoisonCase& c :
       {PoisonCase{"NaN target", false, kNaN}, PoisonCase{"inf target", false, kInf},
        PoisonCase{"inf input", true, kInf}}) {
    SCOPED_TRACE(c.what);
    nn::Sequential model = make_mlp(kIn, kHidden, kOut, 77);
    AccumulationWindow window(model.parameters(),
                              WindowOptions().overflow(OverflowPolicy::DropMicroBatch));
    SGD opt(model.parameters(), SGDOptions(0.05));
    Tensor x = random_tensor({8, kIn}, 1000), y = random_tensor({8, kOut}, 2000);
    if (c.poison_input) {
      x = with_value_at(x, 1 * kIn, c.value);  // row 1: the first micro-batch
    } else {
      y = with_value_at(y, 1 * kOut, c.value);
    }
    const StepReport rep = window_step(model, window, opt, x, y, {4, 4}, Reduction::Mean);
    EXPECT_TRUE(rep.applied);
    EXPECT_EQ(rep.micro_batches_dropped, 1);
    EXPECT_EQ(rep.samples, 4);
    EXPECT_TRUE(std::isfinite(rep.loss)) << rep.str();

    // The step of the surviving rows 4..7 alone.
    nn::Sequential ref = make_mlp(kIn, kHidden, kOut, 77);
    AccumulationWindow ref_window(ref.parameters());
    SGD ref_opt(ref.parameters(), SGDOptions(0.05));
    window_step(ref, ref_window, ref_opt, x.rows(4, 8), y.rows(4, 8), {4}, Reduction::Mean);
    EXPECT_LE(max_rel_diff(snapshot(model.parameters()), snapshot(ref.parameters())), 1e-6);
  }
}

// ---- large counts -----------------------------------------------------------------------------

// A window of 2^20 micro-batches of one sample each, through the whole path (forward, loss,
// backward, counts, step): the counts are exact and the step divides once by the true count.
// Linear(1, 1) at x = 1 with a target far below: every micro-batch adds exactly 1 to both
// gradients (sums of ones stay exact in f32 up to 2^24), so the mean gradient is exactly 1.
TEST(BadInput, AMillionMicroBatchWindowCountsExactly) {
#if defined(GA_BAD_INPUT_SANITIZED)
  constexpr std::int64_t k = std::int64_t{1} << 17;  // the sanitizers look for memory errors
#else
  constexpr std::int64_t k = std::int64_t{1} << 20;
#endif
  nn::Linear fc(nn::LinearOptions(1, 1).seed(3));
  AccumulationWindow window(fc.parameters());
  SGD opt(fc.parameters(), SGDOptions(0.5));
  const float w0 = fc.weight().value().to_vector()[0], b0 = fc.bias().value().to_vector()[0];
  nn::L1Loss mean(Reduction::Mean);
  Variable x(Tensor::full({1, 1}, 1.0f));
  Variable y(Tensor::full({1, 1}, -100.0f));
  window.zero_grad();
  for (std::int64_t i = 0; i < k; ++i)
    window.backward(mean(fc(x), y));
  EXPECT_EQ(window.micro_batches_submitted(), k);
  EXPECT_EQ(window.samples_submitted(), static_cast<std::uint64_t>(k));
  EXPECT_EQ(fc.weight().grad().to_vector()[0], static_cast<float>(k));
  const StepReport rep = opt.step(window);
  EXPECT_TRUE(rep.applied);
  EXPECT_EQ(rep.micro_batches, k);
  EXPECT_EQ(rep.samples, k);
  EXPECT_EQ(rep.elements, k);
  // k is a power of two: 1/k is exact in f32, so the update is exactly lr * 1.
  EXPECT_EQ(fc.weight().value().to_vector()[0], w0 - 0.5f);
  EXPECT_EQ(fc.bias().value().to_vector()[0], b0 - 0.5f);
  // The reported loss: k equal values near 101 in one compensated f32 chain. A plain chain was
  // ~1% off at 2^20 (it stops growing at 2^24 · its ulp); this one is within two f32 ulps.
  const double want = std::fabs(static_cast<double>(w0 + b0) + 100.0);
  EXPECT_NEAR(rep.loss, want, 2 * std::ldexp(want, -23));
}

// The window's counting kernel over a million micro-batches of 3000 samples: 3e9 samples and
// 9e9 loss elements (both past 2^32) counted exactly, and the gradient scale their inverse.
TEST(BadInput, CountsPast2To32StayExactOverAMillionMicroBatches) {
  Storage counts = make_window_counts(Device::CPU);
  Tensor ls = Tensor::full({1}, 1.0f), inv = Tensor::full({1}, 1.0f);
  LossScaleRule rule;
  constexpr std::uint64_t k = 1'000'000, samples = 3000, outputs = 3;
  for (std::uint64_t i = 0; i < k; ++i)
    window_count_micro_batch(counts, nullptr, samples, samples * outputs, ls, inv, rule);
  const WindowCounts c = read_window_counts(counts);
  EXPECT_EQ(c.micro_batches, k);
  EXPECT_EQ(c.samples, k * samples);
  EXPECT_EQ(c.elements, k * samples * outputs);
  Tensor gs = Tensor::zeros({1});
  NonFiniteFlag skip(Device::CPU);
  window_grad_scale(counts, WindowDivisor::Elements, nullptr, gs, skip);
  EXPECT_EQ(gs.to_vector()[0], static_cast<float>(1.0 / 9e9));
  window_grad_scale(counts, WindowDivisor::MicroBatches, nullptr, gs, skip);
  EXPECT_EQ(gs.to_vector()[0], static_cast<float>(1.0 / 1e6));
  EXPECT_FALSE(skip.raised());
}

// Where the other categories of bad input are checked:
//   dtypes mixed in one op           autograd_api_test.cpp AutogradApi.MixingDtypesInOneOpThrows,
//                                    linear_test.cpp CpuLinear.BadArgumentsThrowNamingTheProblem
//   devices mixed / no device        AutogradApi.MixingDevicesInOneOpThrows,
//                                    Tensor.CudaTensorWithoutDeviceIsAClearError,
//                                    NonFiniteFlag.CudaFlagWithoutDeviceIsAClearError
//   kernels' own argument checks     *.BadArgumentsAreErrors (accumulate, l1, relu, sgd, adamw)
//   step without samples, stepping   accumulation_test.cpp Accumulation.StepWithNoSamplesThrows
//   backward twice                   AutogradApi.BackwardTwiceThrowsBecauseTheTapeIsFreed,
//                                    Accumulation.BackwardTwiceThrowsAndLeavesTheWindowIntact
//   failed micro-step mid-window     Accumulation.AFailedMicroStepDoesNotCorruptTheWindow
//   non-finite with loss scaling     Accumulation.SkipStepSkipsAndBacksOffTheScale,
//                                    Accumulation.DropMicroBatch*
//   malformed / unreadable .npy      npy_test.cpp NpyMalformed.*, NpyTest.LoadReports*
//   SGD options                      SgdOptions.InvalidOptionsThrowInTheConstructor
//   AdamW options, AdamW states      adamw_test.cpp AdamWOptions.*, AdamWState.AMismatchedState*
//   counts past 2^31 (two calls)     WindowScalars.CountsAre64BitAndTheScaleIsComputedInDouble
//   programs' flags and inputs       tests/programs/bad_input.sh
//   device memory, OOM mid-window    tests/gpu/memory_check_listener.cpp, bad_input_gpu_test.cpp

}  // namespace
}  // namespace gradaccum::test
