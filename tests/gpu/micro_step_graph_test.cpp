// optim::MicroStepGraph: the MLP Linear-ReLU-Linear + L1 micro-step captured as a CUDA graph and
// replayed gives the step that launching op by op gives: bit-identical in deterministic mode,
// within fp32 rounding otherwise; the same counts and StepReports; one graph for any k; uneven
// last micro-batches; Kahan, drop-micro-batch and an f16 model under a changing dynamic loss
// scale with one graph; bad inputs throw; a step that cannot be captured falls back with the
// reason and stays right.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "mlp_helpers.h"

namespace gradaccum::test {
namespace {

using autograd::Variable;
using optim::MicroStepGraph;

struct GraphSetup {
  Device device = Device::CUDA;
  DType dtype = DType::f32;
  bool deterministic = true;
  optim::WindowOptions window;
  Reduction reduction = Reduction::Mean;
  std::vector<std::int64_t> split = {6, 6, 6, 6};
  int steps = 3;
  std::vector<int> k_per_step;     // if set: step i takes k_per_step[i] micro-batches of split[0]
  bool device_inputs = false;      // micro-batches handed over on the device (else from the host)
  bool read_loss_in_step = false;  // a synchronous device read inside the step
  Tensor* free_in_second_step = nullptr;  // a device tensor the second call (the capture) frees
};

struct Result {
  std::vector<std::vector<float>> params;
  std::vector<optim::StepReport> reports;
  std::vector<std::int64_t> submitted;  // micro-batches submitted before each step
  std::vector<WindowCounts> counts;
  std::map<std::int64_t, bool> captured;  // per micro-batch size
  std::map<std::int64_t, std::string> reasons;
  std::map<std::int64_t, std::size_t> kernels;
};

constexpr std::int64_t kIn = 8, kHidden = 16, kOut = 4;

Result train(const GraphSetup& s, bool graph) {
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 3);
  model.to(s.dtype);
  model.to(s.device);
  GemmConfig gc;
  gc.deterministic = s.deterministic;
  model.set_gemm_config(gc);
  optim::AccumulationWindow window(model.parameters(), s.window);
  optim::SGD opt(model.parameters(), optim::SGDOptions(0.05).momentum(0.9));
  nn::L1Loss loss_fn(s.reduction);
  std::vector<std::vector<std::int64_t>> splits(static_cast<std::size_t>(s.steps), s.split);
  for (std::size_t i = 0; i < s.k_per_step.size() && i < splits.size(); ++i)
    splits[i].assign(static_cast<std::size_t>(s.k_per_step[i]), s.split.front());
  std::int64_t rows = 0;
  for (const auto& split : splits) {
    for (std::int64_t m : split)
      rows += m;
  }
  const Tensor x = random_tensor({rows, kIn}, 11, s.dtype);
  const Tensor y = random_tensor({rows, kOut}, 12, s.dtype);
  int calls = 0;
  const MicroStepGraph::StepFn step = [&](const Variable& xb, const Variable& yb) {
    if (++calls == 2 && s.free_in_second_step != nullptr) *s.free_in_second_step = Tensor();
    Variable loss = loss_fn(model(xb), yb);
    if (s.read_loss_in_step) {
      EXPECT_TRUE(std::isfinite(loss.item()));
    }
    return loss;
  };
  std::map<std::int64_t, std::unique_ptr<MicroStepGraph>> graphs;
  Result r;
  std::int64_t row = 0;
  for (int i = 0; i < s.steps; ++i) {
    window.zero_grad();
    for (std::int64_t m : splits[static_cast<std::size_t>(i)]) {
      Tensor xb = x.rows(row, row + m), yb = y.rows(row, row + m);
      if (s.device_inputs) {
        xb = xb.to(s.device);
        yb = yb.to(s.device);
      }
      row += m;
      if (!graph) {
        window.backward(step(Variable(xb.to(s.device)), Variable(yb.to(s.device))));
        continue;
      }
      auto& g = graphs[m];
      if (!g) g = std::make_unique<MicroStepGraph>(window, step, xb.shape(), yb.shape(), s.dtype);
      g->run(xb, yb);
    }
    r.submitted.push_back(window.micro_batches_submitted());
    r.counts.push_back(window.counts());
    r.reports.push_back(opt.step(window));
  }
  for (const auto& [m, g] : graphs) {
    r.captured[m] = g->captured();
    r.reasons[m] = g->fallback_reason();
    r.kernels[m] = g->kernels_per_micro_step();
  }
  r.params = snapshot(model.parameters());
  return r;
}

bool same_bytes(const std::vector<std::vector<float>>& a,
                const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0) {
      return false;
    }
  }
  return true;
}

void expect_same_reports(const Result& a, const Result& b, bool exact_loss) {
  ASSERT_EQ(a.reports.size(), b.reports.size());
  EXPECT_EQ(a.submitted, b.submitted);
  for (std::size_t i = 0; i < a.reports.size(); ++i) {
    const optim::StepReport &p = a.reports[i], &q = b.reports[i];
    EXPECT_EQ(p.applied, q.applied) << "step " << i;
    EXPECT_EQ(p.micro_batches, q.micro_batches) << "step " << i;
    EXPECT_EQ(p.micro_batches_dropped, q.micro_batches_dropped) << "step " << i;
    EXPECT_EQ(p.samples, q.samples) << "step " << i;
    EXPECT_EQ(p.elements, q.elements) << "step " << i;
    EXPECT_EQ(p.loss_scale, q.loss_scale) << "step " << i;
    if (exact_loss) {
      EXPECT_EQ(p.loss_sum, q.loss_sum) << "step " << i;
    } else {
      EXPECT_NEAR(p.loss_sum, q.loss_sum, 1e-5 * std::abs(q.loss_sum)) << "step " << i;
    }
    EXPECT_EQ(a.counts[i].samples, b.counts[i].samples) << "step " << i;
    EXPECT_EQ(a.counts[i].elements, b.counts[i].elements) << "step " << i;
    EXPECT_EQ(a.counts[i].micro_batches, b.counts[i].micro_batches) << "step " << i;
    EXPECT_EQ(a.counts[i].dropped, b.counts[i].dropped) << "step " << i;
  }
}

void expect_captured(const Result& r) {
  for (const auto& [m, captured] : r.captured) {
    EXPECT_TRUE(captured) << m << " rows: " << r.reasons.at(m);
    EXPECT_EQ(r.reasons.at(m), "") << m << " rows";
    EXPECT_GT(r.kernels.at(m), 5u) << m << " rows";
  }
}

TEST(MicroStepGraph, DeterministicReplaysAreBitIdenticalToOpByOp) {
  GA_REQUIRE_CUDA();
  for (Reduction red : {Reduction::Mean, Reduction::Sum}) {
    GraphSetup s;
    s.reduction = red;
    const Result graph = train(s, true), direct = train(s, false);
    expect_captured(graph);
    EXPECT_TRUE(same_bytes(graph.params, direct.params)) << reduction_name(red);
    expect_same_reports(graph, direct, true);
    // The MLP micro-step in the default window: two forward GEMMs (ReLU in the first's
    // epilogue), the loss (its reduced value in the same launch), its gradient, the masked dX
    // and the two parameter-gradient GEMMs, the window's loss chain with its count: 8 nodes.
    // More means a fusion came undone (docs/optimisations.md).
    EXPECT_EQ(graph.kernels.at(6), 8u) << reduction_name(red);
  }
}

TEST(MicroStepGraph, OneGraphServesAnyNumberOfMicroBatches) {
  GA_REQUIRE_CUDA();
  GraphSetup s;
  s.split = {4};
  s.steps = 4;
  s.k_per_step = {2, 5, 1, 3};  // the true-count scale is read on the device at each step
  const Result graph = train(s, true), direct = train(s, false);
  expect_captured(graph);
  EXPECT_EQ(graph.captured.size(), 1u);
  EXPECT_EQ(graph.submitted, (std::vector<std::int64_t>{2, 5, 1, 3}));
  EXPECT_TRUE(same_bytes(graph.params, direct.params));
  expect_same_reports(graph, direct, true);
}

TEST(MicroStepGraph, DefaultModeAndUnevenLastMicroBatch) {
  GA_REQUIRE_CUDA();
  GraphSetup s;
  s.deterministic = false;
  s.split = {7, 7, 7, 3};  // two graphs: 7 rows and 3 rows
  s.device_inputs = true;
  const Result graph = train(s, true), direct = train(s, false);
  expect_captured(graph);
  EXPECT_EQ(graph.captured.size(), 2u);
  EXPECT_LT(max_rel_diff(graph.params, direct.params), 1e-5);
  expect_same_reports(graph, direct, false);
}

TEST(MicroStepGraph, KahanAndDropMicroBatchThroughTheGraph) {
  GA_REQUIRE_CUDA();
  for (optim::OverflowPolicy policy :
       {optim::OverflowPolicy::SkipStep, optim::OverflowPolicy::DropMicroBatch}) {
    GraphSetup s;
    s.window = optim::WindowOptions()
                   .compensation(optim::Compensation::Kahan)
                   .loss_scaling(optim::LossScaling::fixed(256.0f))
                   .overflow(policy);
    s.split = {5, 5, 5, 5, 4};
    const Result graph = train(s, true), direct = train(s, false);
    expect_captured(graph);
    EXPECT_TRUE(same_bytes(graph.params, direct.params)) << optim::overflow_policy_name(policy);
    expect_same_reports(graph, direct, true);
    // Drop-micro-batch adds the flag's reset, one check of every scratch gradient and the loss,
    // one addition of them all, and the count: 11 (docs/optimisations.md).
    EXPECT_EQ(graph.kernels.at(5), policy == optim::OverflowPolicy::SkipStep ? 8u : 11u)
        << optim::overflow_policy_name(policy);
  }
}

TEST(MicroStepGraph, F16WithADynamicLossScaleThatChangesUnderOneGraph) {
  GA_REQUIRE_CUDA();
  GraphSetup s;
  s.dtype = DType::f16;
  s.deterministic = false;
  s.steps = 5;
  // Starts high enough to overflow fp16 gradients, grows after every clean step.
  s.window = optim::WindowOptions()
                 .loss_scaling(optim::LossScaling::dynamic(1e9f, 2.0f, 0.5f, 1))
                 .overflow(optim::OverflowPolicy::DropMicroBatch);
  const Result graph = train(s, true), direct = train(s, false);
  expect_captured(graph);
  EXPECT_EQ(graph.captured.size(), 1u) << "one graph for every step";
  std::set<float> scales;
  for (const auto& r : graph.reports)
    scales.insert(r.loss_scale);
  EXPECT_GE(scales.size(), 2u) << "the loss scale should change between steps";
  std::int64_t dropped = 0;
  for (const auto& r : graph.reports)
    dropped += r.micro_batches_dropped;
  EXPECT_GT(dropped, 0) << "the first micro-batches should overflow and be dropped";
  EXPECT_LT(max_rel_diff(graph.params, direct.params), 1e-3);
  expect_same_reports(graph, direct, false);
}

TEST(MicroStepGraph, ASynchronousReadDuringCaptureFallsBackAndStaysRight) {
  GA_REQUIRE_CUDA();
  GraphSetup s;
  s.read_loss_in_step = true;
  const Result graph = train(s, true), direct = train(s, false);
  ASSERT_EQ(graph.captured.size(), 1u);
  EXPECT_FALSE(graph.captured.begin()->second);
  const std::string& reason = graph.reasons.begin()->second;
  EXPECT_NE(reason.find("capture failed"), std::string::npos) << reason;
  EXPECT_NE(reason.find("cudaErrorStreamCapture"), std::string::npos) << reason;
  EXPECT_EQ(graph.kernels.begin()->second, 0u);
  EXPECT_TRUE(same_bytes(graph.params, direct.params));
  expect_same_reports(graph, direct, true);
}

TEST(MicroStepGraph, AFreeDuringCaptureFallsBackAndTheBlockIsFreedLater) {
  GA_REQUIRE_CUDA();
  const std::size_t before = cuda_bytes_in_use();
  Tensor victim = Tensor::zeros({1000}, DType::f32, Device::CUDA);  // not from the graph's pool
  GraphSetup s;
  s.free_in_second_step = &victim;
  const Result graph = train(s, true);
  ASSERT_EQ(graph.captured.size(), 1u);
  EXPECT_FALSE(graph.captured.begin()->second);
  EXPECT_NE(graph.reasons.begin()->second.find("cudaErrorStreamCapture"), std::string::npos)
      << graph.reasons.begin()->second;
  EXPECT_FALSE(victim.defined());
  cuda_synchronize();  // frees what the capture refused to
  EXPECT_EQ(cuda_bytes_in_use(), before);
  s.free_in_second_step = nullptr;
  EXPECT_TRUE(same_bytes(graph.params, train(s, false).params));
}

TEST(MicroStepGraph, OnTheCpuItRunsOpByOp) {
  GraphSetup s;
  s.device = Device::CPU;
  const Result graph = train(s, true), direct = train(s, false);
  ASSERT_EQ(graph.captured.size(), 1u);
  EXPECT_FALSE(graph.captured.begin()->second);
  EXPECT_EQ(graph.reasons.begin()->second, "CPU device");
  EXPECT_TRUE(same_bytes(graph.params, direct.params));
  expect_same_reports(graph, direct, true);
}

TEST(MicroStepGraph, BadInputsThrowNamingWhatWasExpected) {
  GA_REQUIRE_CUDA();
  nn::Sequential model = make_mlp(kIn, kHidden, kOut, 3);
  model.to(Device::CUDA);
  optim::AccumulationWindow window(model.parameters());
  nn::L1Loss loss_fn(Reduction::Mean);
  MicroStepGraph g(
      window, [&](const Variable& x, const Variable& y) { return loss_fn(model(x), y); }, {4, kIn},
      {4, kOut}, DType::f32);
  const auto message = [&](const Tensor& x, const Tensor& y) {
    try {
      g.run(x, y);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const Tensor good_x = random_tensor({4, kIn}, 1), good_y = random_tensor({4, kOut}, 2);
  EXPECT_NE(message(random_tensor({5, kIn}, 1), good_y).find("expected [4, 8]"), std::string::npos)
      << message(random_tensor({5, kIn}, 1), good_y);
  EXPECT_NE(message(good_x, random_tensor({4, 3}, 2)).find("y has shape"), std::string::npos);
  EXPECT_NE(message(random_tensor({4, kIn}, 1, DType::f16), good_y).find("expected f32"),
            std::string::npos);
  EXPECT_NE(message(Tensor(), good_y).find("undefined"), std::string::npos);
  EXPECT_EQ(window.micro_batches_submitted(), 0) << "nothing was added";
  EXPECT_EQ(message(good_x, good_y), "");
  EXPECT_EQ(message(good_x, good_y), "");
  EXPECT_EQ(window.micro_batches_submitted(), 2);
  EXPECT_EQ(window.samples_submitted(), 8u);
  EXPECT_THROW(MicroStepGraph(window, nullptr, {4, kIn}, {4, kOut}, DType::f32), Error);
  EXPECT_THROW(MicroStepGraph(
                   window, [&](const Variable&, const Variable&) { return Variable(); }, {4, kIn},
                   {3, kOut}, DType::f32),
               Error);
  // A stepped window takes no replay until zero_grad().
  optim::SGD opt(model.parameters(), optim::SGDOptions(0.1));
  opt.step(window);
  EXPECT_NE(message(good_x, good_y).find("zero_grad"), std::string::npos);
  window.zero_grad();
  EXPECT_EQ(message(good_x, good_y), "");
  EXPECT_EQ(window.micro_batches_submitted(), 1);
}

}  // namespace
}  // namespace gradaccum::test
