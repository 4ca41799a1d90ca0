// State dicts: the file format (round trip, truncation, corruption, an interrupted write), and
// the module, optimizer and window states that make a resumed run continue bit for bit.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/state_dict.h"
#include "mlp_helpers.h"
#include "resume_util.h"

namespace gradaccum {
namespace {

namespace fs = std::filesystem;

std::string scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("gradaccum-state-" + std::to_string(getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

StateDict sample_state(std::uint64_t seed) {
  StateDict s;
  s.set_text("step", std::to_string(seed));
  s.set_text("config.note", "a value with spaces, = and 'quotes'");
  s.set_tensor("w", Tensor::from_vector(test::random_values(12, seed), {3, 4}));
  s.set_tensor("h", Tensor::from_vector(test::random_values(5, seed + 1), {5}, DType::f16));
  return s;
}

void expect_same(const StateDict& a, const StateDict& b) {
  EXPECT_EQ(a.texts(), b.texts());
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (const auto& [name, t] : a.tensors()) {
    ASSERT_TRUE(b.has_tensor(name)) << name;
    const Tensor& u = b.tensor(name);
    ASSERT_EQ(t.shape(), u.shape()) << name;
    ASSERT_EQ(t.dtype(), u.dtype()) << name;
    EXPECT_EQ(0, std::memcmp(t.raw_data(), u.raw_data(), t.nbytes())) << name;
  }
}

using test::message_of;

TEST(StateDict, RoundTripsTextsAndTensorsThroughAFile) {
  const StateDict s = sample_state(7);
  const std::string path = scratch("round_trip.state");
  s.save(path);
  expect_same(s, StateDict::load(path));
  EXPECT_EQ(s.serialize(), StateDict::load(path).serialize());
  EXPECT_EQ(7, StateDict::load(path).integer("step"));
}

TEST(StateDict, KeysAndValuesAreChecked) {
  StateDict s;
  EXPECT_THROW(s.set_text("two words", "x"), Error);
  EXPECT_THROW(s.set_text("k", "line\nbreak"), Error);
  EXPECT_THROW(s.set_tensor("t", Tensor()), Error);
  s.set_text("k", "not a number");
  EXPECT_NE(message_of([&] { s.integer("k"); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(message_of([&] { s.text("missing"); }).find("no value 'missing'"), std::string::npos);
  StateDict t;
  t.set_text("k", "1");
  EXPECT_THROW(s.merge("", t), Error);  // 'k' twice
  s.merge("sub.", t);
  EXPECT_EQ("1", s.under("sub.").text("k"));
}

TEST(StateDict, EveryTruncationIsRefused) {
  const std::string bytes = sample_state(3).serialize();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const std::string m = message_of([&] { StateDict::parse(bytes.substr(0, n), "f"); });
    EXPECT_TRUE(m.find("truncated") != std::string::npos ||
                m.find("not a gradaccum state file") != std::string::npos)
        << n << ": " << m;
  }
}

TEST(StateDict, EveryFlippedByteIsRefused) {
  const std::string bytes = sample_state(4).serialize();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    const std::string m = message_of([&] { StateDict::parse(bad, "f"); });
    EXPECT_NE(m, "(no error)") << "byte " << i;
  }
}

TEST(StateDict, MissingFilesAndOtherFilesAreErrorsNamingThem) {
  EXPECT_NE(
      message_of([] { StateDict::load("/nonexistent/x.state"); }).find("/nonexistent/x.state"),
      std::string::npos);
  const std::string path = scratch("not_state.npy");
  std::ofstream(path) << "\x93NUMPY something else";
  EXPECT_NE(message_of([&] { StateDict::load(path); }).find("not a gradaccum state file"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              StateDict::load(fs::path(path).parent_path().string());
            }).find("cannot open: is a directory"),
            std::string::npos);
}

// What a crash in the middle of a save leaves: the temporary file, partly written. The last
// complete state is still the file's, and the next save replaces both.
TEST(StateDict, AnInterruptedWriteLeavesThePreviousStateWhole) {
  const std::string path = scratch("interrupted.state");
  const StateDict a = sample_state(10), b = sample_state(11);
  a.save(path);
  const std::string b_bytes = b.serialize();
  for (std::size_t cut : {std::size_t{0}, std::size_t{9}, b_bytes.size() / 2, b_bytes.size() - 1}) {
    std::ofstream(atomic_temporary_path(path), std::ios::binary) << b_bytes.substr(0, cut);
    expect_same(a, StateDict::load(path));
  }
  b.save(path);
  expect_same(b, StateDict::load(path));
  EXPECT_FALSE(fs::exists(atomic_temporary_path(path)));
  // A writer that is not atomic would have left this: refused, never half loaded.
  std::ofstream(path, std::ios::binary | std::ios::trunc) << b_bytes.substr(0, b_bytes.size() / 2);
  EXPECT_NE(message_of([&] { StateDict::load(path); }).find("truncated"), std::string::npos);
}

TEST(StateDict, AFailedWriteLeavesTheTargetUntouched) {
  EXPECT_NE(message_of([] {
              sample_state(1).save("/nonexistent-folder/x.state");
            }).find("cannot write '/nonexistent-folder/x.state'"),
            std::string::npos);
}

// ---- module, optimizer and window states: a resumed run continues bit for bit ----

using test::TrainingRun;

TEST(ResumeState, F32WithMomentumContinuesBitForBit) {
  test::expect_resume_is_bit_identical(Device::CPU, DType::f32, optim::WindowOptions());
}

TEST(ResumeState, F16WithADynamicLossScaleContinuesBitForBit) {
  // Growth every 2 clean steps from 2^10: the scale and its clean-step count both carry over.
  test::expect_resume_is_bit_identical(
      Device::CPU, DType::f16,
      optim::WindowOptions().loss_scaling(optim::LossScaling::dynamic(1024, 2, 0.5, 2)));
}

TEST(ResumeState, ExactAccumulationContinuesBitForBit) {
  test::expect_resume_is_bit_identical(
      Device::CPU, DType::f32, optim::WindowOptions().compensation(optim::Compensation::Exact));
}

TEST(ResumeState, AStateOfAnotherConfigurationIsRefusedAndChangesNothing) {
  TrainingRun a(Device::CPU, DType::f32, optim::WindowOptions());
  a.steps(0, 2);
  const StateDict s = a.state();
  TrainingRun kahan(Device::CPU, DType::f32,
                    optim::WindowOptions().compensation(optim::Compensation::Kahan));
  const std::string m = message_of([&] { kahan.window.load_state_dict(s.under("window.")); });
  EXPECT_NE(m.find("accumulation: naive"), std::string::npos) << m;
  EXPECT_NE(m.find("expected the same configuration"), std::string::npos) << m;

  nn::Sequential wider = test::make_mlp(6, 17, 3, 5);
  optim::SGD opt(wider.parameters(), optim::SGDOptions(0.1));
  const auto before = test::snapshot(wider.parameters());
  EXPECT_NE(message_of([&] { wider.load_state_dict(s.under("model.")); }).find("fc1.weight"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              opt.load_state_dict(s.under("optimizer."));
            }).find("expected the same shape and dtype"),
            std::string::npos);
  EXPECT_EQ(before, test::snapshot(wider.parameters()));
  EXPECT_EQ(0.1, opt.options().lr());  // the failed load left the options too
}

TEST(ResumeState, AWindowTakesAStateOnlyBetweenSteps) {
  TrainingRun a(Device::CPU, DType::f32, optim::WindowOptions());
  const StateDict s = a.window.state_dict();
  a.window.zero_grad();
  nn::L1Loss loss_fn(Reduction::Mean);
  Tensor x = Tensor::from_vector(test::random_values(4 * 6, 1), {4, 6});
  Tensor y = Tensor::from_vector(test::random_values(4 * 3, 2), {4, 3});
  a.window.backward(
      loss_fn(a.model(autograd::Variable(std::move(x))), autograd::Variable(std::move(y))));
  EXPECT_NE(message_of([&] { a.window.load_state_dict(s); }).find("holds 1 micro-batches"),
            std::string::npos);
}

}  // namespace
}  // namespace gradaccum
