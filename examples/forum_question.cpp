// The forum question gradaccum was born from:
//
//   "I trained with batch 2. Now I split it into 2 micro-batches of 1 and accumulate the
//    gradients. Do I get the same step? Must I halve the learning rate?"
//
// The MLP Linear(4, 8) → ReLU → Linear(8, 2), two samples, L1 loss, one SGD step. Each scheme
// starts from the same weights and is compared with the plain batch of two:
//   window      gradaccum's AccumulationWindow (sums, divided once by the true count)
//   naive loop  loss.backward() per micro-batch, then step (what the forum user did)
//   /k recipe   Normalization::MicroBatch: per-micro-batch reduction, divided by k (Lightning)
// for `mean` and `sum`. With gradaccum's window both reductions give the batch's gradients and
// parameters at the same learning rate; the naive loop needs lr/2 for `mean` (the forum's
// finding); the /k recipe needs 2·lr for `sum` (and is wrong for uneven windows).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/nn.h"
#include "optim/optim.h"

using namespace gradaccum;
using autograd::Variable;

namespace {

constexpr float kLr = 0.1f;
const std::vector<float> kX = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f, -0.5f, 1.0f};  // [2, 4]
const std::vector<float> kY = {1.0f, -2.0f, 0.5f, 0.75f};                             // [2, 2]

nn::Sequential make_model() {
  nn::Sequential m({{"fc1", nn::Linear(nn::LinearOptions(4, 8).seed(2024))},
                    {"relu", nn::ReLU()},
                    {"fc2", nn::Linear(nn::LinearOptions(8, 2).seed(2025))}});
  GemmConfig deterministic;
  deterministic.deterministic = true;
  m.set_gemm_config(deterministic);
  return m;
}

Variable x_rows(int begin, int end) {
  return Variable(Tensor::from_vector(kX, {2, 4}).rows(begin, end));
}
Variable y_rows(int begin, int end) {
  return Variable(Tensor::from_vector(kY, {2, 2}).rows(begin, end));
}

struct Outcome {
  std::vector<float> grads;   // the gradient the step applied (flattened)
  std::vector<float> params;  // the parameters after the step
};

std::vector<float> flat(const std::vector<Variable>& ps, bool grads) {
  std::vector<float> out;
  for (const Variable& p : ps) {
    auto v = grads ? p.grad().to_vector() : p.value().to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// The reference: one batch of both samples, PyTorch's loss.backward() and step.
Outcome batch_step(Reduction r) {
  const nn::L1Loss loss_fn(r);
  nn::Sequential model = make_model();
  optim::SGD opt(model.parameters(), optim::SGDOptions(kLr));
  loss_fn(model(x_rows(0, 2)), y_rows(0, 2)).backward();
  Outcome o{flat(model.parameters(), true), {}};
  opt.step();
  o.params = flat(model.parameters(), false);
  return o;
}

// gradaccum's window (or the /k recipe): two micro-batches of one sample.
Outcome window_step(Reduction r, optim::Normalization n, float lr) {
  const nn::L1Loss loss_fn(r);
  nn::Sequential model = make_model();
  optim::AccumulationWindow window(model.parameters(), optim::WindowOptions().normalization(n));
  optim::SGD opt(model.parameters(), optim::SGDOptions(lr));
  window.zero_grad();
  for (int i = 0; i < 2; ++i)
    window.backward(loss_fn(model(x_rows(i, i + 1)), y_rows(i, i + 1)));
  // The window holds sums; the step applies them times 1/count (count from the window).
  const optim::StepReport rep = opt.step(window);
  double divisor = 1.0;
  if (n == optim::Normalization::MicroBatch) {
    divisor = static_cast<double>(rep.micro_batches);
  } else if (r == Reduction::Mean) {
    divisor = static_cast<double>(rep.elements);
  }
  Outcome o{flat(model.parameters(), true), flat(model.parameters(), false)};
  for (float& g : o.grads)
    g = static_cast<float>(g / divisor);
  return o;
}

// The forum user's loop: backward per micro-batch (each loss reduced over its own sample), step.
Outcome naive_step(Reduction r, float lr) {
  const nn::L1Loss loss_fn(r);
  nn::Sequential model = make_model();
  optim::SGD opt(model.parameters(), optim::SGDOptions(lr));
  for (int i = 0; i < 2; ++i)
    loss_fn(model(x_rows(i, i + 1)), y_rows(i, i + 1)).backward();
  Outcome o{flat(model.parameters(), true), {}};
  opt.step();
  o.params = flat(model.parameters(), false);
  return o;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d =
        std::fabs(double(a[i]) - double(b[i])) / std::max(std::fabs(double(b[i])), 1e-6);
    worst = std::max(worst, d);
  }
  return worst;
}

const char* verdict(double rel) {
  return rel <= 1e-6 ? "equal    " : "DIFFERENT";
}

void row(const char* scheme, const char* lr, const Outcome& got, const Outcome& ref) {
  const double dg = max_rel(got.grads, ref.grads), dp = max_rel(got.params, ref.params);
  std::printf("  %-34s %-6s gradients %s (max rel diff %.1e)   parameters %s (%.1e)\n", scheme, lr,
              verdict(dg), dg, verdict(dp), dp);
}

}  // namespace

int main() {
  std::printf("MLP Linear(4, 8) -> ReLU -> Linear(8, 2), L1 loss, 2 samples, SGD lr = %g\n", kLr);
  std::printf("one batch of 2 samples vs 2 accumulated micro-batches of 1 sample\n");
  bool window_exact = true;
  for (Reduction r : {Reduction::Sum, Reduction::Mean}) {
    std::printf("\nreduction = %s\n", reduction_name(r));
    const Outcome ref = batch_step(r);
    const Outcome win = window_step(r, optim::Normalization::Window, kLr);
    row("gradaccum window", "lr", win, ref);
    window_exact = window_exact && max_rel(win.grads, ref.grads) <= 1e-6 &&
                   max_rel(win.params, ref.params) <= 1e-6;
    row("naive loop (backward per mb)", "lr", naive_step(r, kLr), ref);
    if (r == Reduction::Mean)
      row("naive loop (backward per mb)", "lr/2", naive_step(r, kLr / 2), ref);
    row("per-micro-batch /k (MicroBatch)", "lr",
        window_step(r, optim::Normalization::MicroBatch, kLr), ref);
    if (r == Reduction::Sum) {
      row("per-micro-batch /k (MicroBatch)", "2*lr",
          window_step(r, optim::Normalization::MicroBatch, 2 * kLr), ref);
    }
  }
  std::printf(
      "\n('gradients' are what each scheme applies: the naive loop applies its accumulated\n"
      " buffers, twice the batch's for mean, so lr/2 restores the parameters; the /k recipe\n"
      " applies half the batch's for sum, so 2*lr restores them)\n");
  std::printf("\ngradaccum's window gives the batch step for sum and mean at the same lr: %s\n",
              window_exact ? "yes" : "NO");
  return window_exact ? 0 : 1;
}
