#include "study/forum_runs.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>

#include "autograd/nn.h"
#include "data/fashion_mnist.h"
#include "optim/optim.h"

namespace gradaccum::study {
namespace {

Tensor first_rows(Tensor t, std::int64_t rows) {
  if (rows <= 0 || rows >= t.size(0)) return t;
  return t.rows(0, rows);
}

nn::Sequential make_model(const RunSpec& s) {
  const std::int64_t px = data::kFashionMnistPixels;
  nn::Sequential m;
  m.push_back({"fc1", nn::Linear(nn::LinearOptions(px, s.hidden).seed(s.seed))});
  if (s.batch_norm != BatchNormMode::None) m.push_back({"bn", nn::BatchNorm1d(s.hidden)});
  m.push_back({"relu", nn::ReLU()});
  m.push_back({"fc2", nn::Linear(nn::LinearOptions(s.hidden, px).seed(s.seed + 1))});
  GemmConfig gc;
  gc.deterministic = s.deterministic;
  m.set_gemm_config(gc);
  return m;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const RunSpec& s,
                                                 std::vector<autograd::Variable> params) {
  if (s.optimizer == OptimizerKind::AdamW) {
    return std::make_unique<optim::AdamW>(std::move(params),
                                          optim::AdamWOptions(s.lr).weight_decay(s.weight_decay));
  }
  return std::make_unique<optim::SGD>(
      std::move(params), optim::SGDOptions(s.lr).momentum(s.momentum).weight_decay(s.weight_decay));
}

std::vector<std::int64_t> split_of(const RunSpec& s) {
  std::vector<std::int64_t> split = s.split.empty() ? std::vector<std::int64_t>{s.batch} : s.split;
  std::int64_t total = 0;
  for (std::int64_t n : split) {
    GA_CHECK(n >= 1, "study: a micro-batch of " << n << " rows; expected at least one");
    total += n;
  }
  GA_CHECK(total == s.batch,
           "study: the split adds up to " << total << " rows, the batch is " << s.batch);
  return split;
}

// The rows of step `step`: the training table in order, cycling.
Tensor batch_rows(const Tensor& train, std::int64_t step, std::int64_t batch) {
  const std::int64_t n = train.size(0);
  GA_CHECK(n >= batch, "study: " << n << " training rows, fewer than one batch of " << batch);
  const std::int64_t per_epoch = n / batch;
  const std::int64_t b = (step % per_epoch) * batch;
  return train.rows(b, b + batch);
}

double test_l1(nn::Sequential& model, const Tensor& test) {
  autograd::NoGradGuard no_grad;
  model.eval();
  double total = 0;
  constexpr std::int64_t kChunk = 2000;
  for (std::int64_t r = 0; r < test.size(0); r += kChunk) {
    const std::int64_t e = std::min(test.size(0), r + kChunk);
    autograd::Variable x(test.rows(r, e));
    const autograd::Variable loss = nn::L1Loss(Reduction::Sum)(model(x), x);
    total += static_cast<double>(loss.item());
  }
  model.train();
  return total / static_cast<double>(test.numel());
}

std::vector<float> flat_state(const nn::Module& m) {
  std::vector<float> out;
  for (const autograd::Variable& p : m.parameters()) {
    const std::vector<float> v = p.value().to(Device::CPU).to(DType::f32).to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  for (const auto& [name, t] : m.named_buffers()) {
    const std::vector<float> v = t->to(Device::CPU).to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// One step's micro-batches into the window (or, NaiveSum, into the plain gradients); returns
// the batch's L1 sum.
double accumulate_step(const RunSpec& s, nn::Sequential& model, optim::AccumulationWindow& window,
                       optim::BatchNormReplay* replay, const Tensor& rows,
                       const std::vector<std::int64_t>& split) {
  nn::L1Loss mean(Reduction::Mean);
  double loss_sum = 0;
  std::int64_t b = 0;
  if (s.recipe == Recipe::NaiveSum) model.zero_grad();
  for (std::int64_t n : split) {
    const Tensor x = rows.rows(b, b + n);
    b += n;
    if (replay != nullptr) {
      replay->submit(x.clone(), x.clone());
      continue;
    }
    autograd::Variable xv(x.clone());
    autograd::Variable loss = mean(model(xv), xv);
    loss_sum += static_cast<double>(loss.loss_sum().to_vector()[0]);
    if (s.recipe == Recipe::NaiveSum) {
      loss.backward();  // PyTorch's loss.backward(): the micro-batch's mean, added up
    } else {
      window.backward(loss);
    }
  }
  if (replay != nullptr) replay->backward();
  return loss_sum;
}

optim::WindowOptions window_options(const RunSpec& s) {
  optim::WindowOptions o;
  if (s.recipe == Recipe::MicroBatchMean) o.normalization(optim::Normalization::MicroBatch);
  return o;
}

}  // namespace

const char* recipe_name(Recipe r) {
  switch (r) {
    case Recipe::Window:
      return "window";
    case Recipe::MicroBatchMean:
      return "per-micro-batch mean / k";
    case Recipe::NaiveSum:
      return "naive sum of means";
  }
  return "?";
}
const char* batch_norm_mode_name(BatchNormMode m) {
  return m == BatchNormMode::None ? "none" : m == BatchNormMode::Ghost ? "ghost" : "window";
}
const char* optimizer_name(OptimizerKind o) {
  return o == OptimizerKind::Sgd ? "SGD" : "AdamW";
}

AutoencoderData load_autoencoder_data(std::int64_t train_rows, std::int64_t test_rows) {
  const std::string dir = data::fashion_mnist_dir();
  AutoencoderData d;
  d.train = first_rows(data::load_fashion_mnist(dir, data::Split::Train).images, train_rows);
  d.test = first_rows(data::load_fashion_mnist(dir, data::Split::Test).images, test_rows);
  return d;
}

RunResult train_run(const RunSpec& s, const AutoencoderData& data) {
  const std::vector<std::int64_t> split = split_of(s);
  GA_CHECK(s.steps >= 1, "study: expected at least one step, got " << s.steps);
  GA_CHECK(s.recipe == Recipe::Window || s.batch_norm != BatchNormMode::Window,
           "study: window batch norm goes with the window recipe");
  nn::Sequential model = make_model(s);
  optim::AccumulationWindow window(model.parameters(), window_options(s));
  std::unique_ptr<optim::Optimizer> opt = make_optimizer(s, model.parameters());
  std::unique_ptr<optim::BatchNormReplay> replay;
  if (s.batch_norm == BatchNormMode::Window) {
    nn::L1Loss mean(Reduction::Mean);
    replay = std::make_unique<optim::BatchNormReplay>(
        window, model,
        [mean](const autograd::Variable& p, const autograd::Variable& t) { return mean(p, t); });
  }
  RunResult r;
  double seconds = 0;
  const double elements = static_cast<double>(s.batch * data::kFashionMnistPixels);
  for (std::int64_t step = 0; step < s.steps; ++step) {
    const Tensor rows = batch_rows(data.train, step, s.batch);
    const auto t0 = std::chrono::steady_clock::now();
    if (s.recipe != Recipe::NaiveSum) window.zero_grad();
    const double loss_sum = accumulate_step(s, model, window, replay.get(), rows, split);
    if (s.recipe == Recipe::NaiveSum) {
      opt->step();
      r.losses.push_back(loss_sum / elements);
    } else {
      const optim::StepReport rep = opt->step(window);
      r.losses.push_back(rep.loss);
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s.eval_every > 0 && (step + 1) % s.eval_every == 0 && step + 1 < s.steps) {
      r.evals.emplace_back(step + 1, test_l1(model, data.test));
    }
  }
  r.test_l1 = test_l1(model, data.test);
  r.evals.emplace_back(s.steps, r.test_l1);
  r.parameters = flat_state(model);
  for (const autograd::Variable& p : model.parameters())
    r.parameter_values += static_cast<std::size_t>(p.value().numel());
  r.hash = fnv1a_hex(r.parameters.data(), r.parameters.size() * sizeof(float));
  r.seconds_per_step = seconds / static_cast<double>(s.steps);
  return r;
}

std::vector<float> recipe_gradient(const RunSpec& s, const AutoencoderData& data) {
  const std::vector<std::int64_t> split = split_of(s);
  nn::Sequential model = make_model(s);
  optim::AccumulationWindow window(model.parameters(), window_options(s));
  GA_CHECK(s.batch_norm != BatchNormMode::Window, "study: recipe_gradient has no window BN");
  const Tensor rows = batch_rows(data.train, 0, s.batch);
  if (s.recipe != Recipe::NaiveSum) window.zero_grad();
  accumulate_step(s, model, window, nullptr, rows, split);
  // The window holds sums: the step would divide them by its count (or by k).
  double divisor = 1;
  if (s.recipe == Recipe::Window) {
    divisor = static_cast<double>(window.counts().elements);
  } else if (s.recipe == Recipe::MicroBatchMean) {
    divisor = static_cast<double>(split.size());
  }
  std::vector<float> out;
  for (const autograd::Variable& p : model.parameters()) {
    for (float g : p.grad().to_vector())
      out.push_back(static_cast<float>(static_cast<double>(g) / divisor));
  }
  return out;
}

std::vector<float> micro_batch_gradients(const RunSpec& spec, const AutoencoderData& data,
                                         std::int64_t rows, std::int64_t micro_batch,
                                         std::int64_t* entries) {
  GA_CHECK(rows * micro_batch <= data.train.size(0),
           "study: " << rows << " micro-batches of " << micro_batch << " rows need "
                     << rows * micro_batch << " training rows, there are " << data.train.size(0));
  RunSpec s = spec;
  s.batch_norm = BatchNormMode::None;
  nn::Sequential model = make_model(s);
  std::vector<autograd::Variable> fc2;
  for (const auto& [name, p] : model.named_parameters()) {
    if (name.rfind("fc2.", 0) == 0) fc2.push_back(p);
  }
  *entries = 0;
  for (const autograd::Variable& p : fc2)
    *entries += p.value().numel();
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(rows * *entries));
  autograd::BackwardOptions o;
  o.loss_as_sum = true;
  o.target = autograd::LeafGradTarget::Scratch;
  nn::L1Loss sum(Reduction::Sum);
  for (std::int64_t r = 0; r < rows; ++r) {
    autograd::Variable x(data.train.rows(r * micro_batch, (r + 1) * micro_batch));
    sum(model(x), x).backward(o);
    for (const autograd::Variable& p : fc2) {
      const std::vector<float> g = p.scratch_grad().to_vector();
      out.insert(out.end(), g.begin(), g.end());
    }
  }
  return out;
}

std::string fnv1a_hex(const void* data, std::size_t bytes) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

double relative_distance(const std::vector<float>& a, const std::vector<float>& b) {
  GA_CHECK(a.size() == b.size(), "relative_distance: " << a.size() << " against " << b.size());
  double d = 0, n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double e = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    d += e * e;
    n += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}

double distance_to(const RunResult& a, const RunResult& ref, const RunResult& theta0) {
  const std::size_t n = ref.parameter_values;
  GA_CHECK(a.parameter_values == n && theta0.parameter_values == n,
           "distance_to: runs of different models");
  double d = 0, moved = 0;
  for (std::size_t i = 0; i < n; ++i) {
    d += std::pow(static_cast<double>(a.parameters[i]) - ref.parameters[i], 2);
    moved += std::pow(static_cast<double>(ref.parameters[i]) - theta0.parameters[i], 2);
  }
  return std::sqrt(d / moved);
}

}  // namespace gradaccum::study
