// The BatchNorm1d op: its forward, and right under it the backward rule it records.
#include "autograd/batch_norm.h"

#include <utility>

#include "autograd/op_support.h"

namespace gradaccum::autograd {

using detail::BackwardContext;
using detail::TapeEntry;
using detail::VarData;

BatchNormWindowSums::BatchNormWindowSums(std::int64_t channels, Device device)
    : exact_dy({channels}, device),
      exact_dy_xhat({channels}, device),
      nonfinite(device),
      sum_dy(Tensor::zeros({channels}, DType::f32, device)),
      sum_dy_xhat(Tensor::zeros({channels}, DType::f32, device)) {}

BatchNormWindowSums BatchNormWindowSums::of_batch(const Tensor& dy, const Tensor& x,
                                                  const BatchNormStatistics& statistics) {
  BatchNormWindowSums sums(x.shape()[1], x.device());
  batch_norm_sum_backward(dy, x, statistics.mean, statistics.invstd, sums.exact_dy,
                          sums.exact_dy_xhat, &sums.nonfinite);
  sums.round();
  return sums;
}

void BatchNormWindowSums::round() {
  // A sum is its own mean over a count of 1: the rounding with NaN under the flag.
  batch_norm_mean(exact_dy, 1, &nonfinite, sum_dy);
  batch_norm_mean(exact_dy_xhat, 1, &nonfinite, sum_dy_xhat);
}

namespace {

// An f32 view of a [C] parameter: the value itself, or an f32 copy of an f16 one.
struct F32Param {
  explicit F32Param(const Tensor* t) {
    if (t == nullptr) return;
    if (t->dtype() == DType::f32) {
      ptr = t;
    } else {
      copy = t->to(DType::f32);
      ptr = &copy;
    }
  }
  Tensor copy;
  const Tensor* ptr = nullptr;
};

}  // namespace

Variable batch_norm(const Variable& x, const Variable& weight, const Variable& bias,
                    std::shared_ptr<const BatchNormStatistics> statistics,
                    const BatchNormBackward& rule) {
  const bool affine = weight.defined();
  detail::check_inputs("batch_norm", {{"x", &x},
                                      {"weight", affine ? &weight : nullptr},
                                      {"bias", bias.defined() ? &bias : nullptr}});
  GA_CHECK(affine == bias.defined(), "batch_norm: weight and bias go together (both or neither)");
  GA_CHECK(!affine || (weight.is_leaf() && bias.is_leaf()),
           "batch_norm: weight and bias must be leaf Variables (parameters)");
  GA_CHECK(statistics != nullptr, "batch_norm: no statistics to normalise with");
  GA_CHECK(rule.rule == BatchNormBackward::Rule::Batch ||
               rule.rule == BatchNormBackward::Rule::Constant || rule.window != nullptr,
           "batch_norm: the window rules need the window's sums");
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  {
    const F32Param w(affine ? &weight.value() : nullptr), b(affine ? &bias.value() : nullptr);
    batch_norm_forward(x.value(), statistics->mean, statistics->invstd, w.ptr, b.ptr, y);
  }

  std::shared_ptr<detail::Tape> tape =
      detail::tape_for("batch_norm", {&x, affine ? &weight : nullptr, affine ? &bias : nullptr});
  Variable out = detail::make_result(std::move(y), tape);
  if (!tape) return out;

  std::shared_ptr<VarData> xd = x.data();
  std::shared_ptr<VarData> wd = affine ? weight.data() : nullptr;
  std::shared_ptr<VarData> bd = affine ? bias.data() : nullptr;
  std::weak_ptr<VarData> yw = out.data();
  TapeEntry e{"batch_norm", out.data(), {xd}, nullptr};
  if (affine) {
    e.inputs.push_back(wd);
    e.inputs.push_back(bd);
  }
  // Backward: with x̂ = (x - mean) · invstd and the sums S1 = Σ dy, S2 = Σ dy · x̂ over the N rows
  // the statistics came from: dbias = S1, dweight = S2, dx = (dy - S1/N - x̂ · S2/N) · w · invstd.
  e.backward = [xd, wd, bd, yw, statistics, rule](BackwardContext& ctx) {
    std::shared_ptr<VarData> yv = yw.lock();
    const Tensor* dy = yv ? ctx.grad_of(*yv) : nullptr;
    if (dy == nullptr) return;
    const Tensor& mean = statistics->mean;
    const Tensor& invstd = statistics->invstd;
    const F32Param w(wd ? &wd->value : nullptr);
    BatchNormWindowSums* window = rule.window.get();
    using Rule = BatchNormBackward::Rule;
    switch (rule.rule) {
      case Rule::Collect: {
        BatchNormPass& pass = *window->pass;
        if (pass.collecting == nullptr) pass.collecting = window;
        if (pass.collecting != window) return;
        batch_norm_sum_backward(*dy, xd->value, mean, invstd, window->exact_dy,
                                window->exact_dy_xhat, &window->nonfinite);
        window->collected = true;
        return;  // nothing below until the window's sums are known
      }
      case Rule::Constant: {
        ctx.write_grad(*xd, [&](Tensor& dx, GradientMode mode) {
          batch_norm_backward_input(*dy, xd->value, mean, invstd, w.ptr, {}, dx, mode);
        });
        if (!wd) return;
        // dweight and dbias still need this batch's sums.
        const BatchNormWindowSums sums = BatchNormWindowSums::of_batch(*dy, xd->value, *statistics);
        ctx.add_to_leaf(*wd, sums.sum_dy_xhat);
        ctx.add_to_leaf(*bd, sums.sum_dy);
        return;
      }
      case Rule::Batch: {
        // This batch's sums, exact, each rounded once (NaN when a term was not finite).
        const BatchNormWindowSums sums = BatchNormWindowSums::of_batch(*dy, xd->value, *statistics);
        const BatchNormBackwardSums s{&sums.sum_dy, &sums.sum_dy_xhat, xd->value.shape()[0]};
        ctx.write_grad(*xd, [&](Tensor& dx, GradientMode mode) {
          batch_norm_backward_input(*dy, xd->value, mean, invstd, w.ptr, s, dx, mode);
        });
        if (wd) {
          ctx.add_to_leaf(*wd, sums.sum_dy_xhat);
          ctx.add_to_leaf(*bd, sums.sum_dy);
        }
        return;
      }
      case Rule::Window: {
        const BatchNormBackwardSums s{&window->sum_dy, &window->sum_dy_xhat, window->count};
        ctx.write_grad(*xd, [&](Tensor& dx, GradientMode mode) {
          batch_norm_backward_input(*dy, xd->value, mean, invstd, w.ptr, s, dx, mode);
        });
        // The gradients of weight and bias are the window's sums themselves: added once, so that
        // they are the exact sums rounded once, whatever the split.
        if (wd && window->params_pending) {
          ctx.add_to_leaf(*wd, window->sum_dy_xhat);
          ctx.add_to_leaf(*bd, window->sum_dy);
          window->params_pending = false;
        }
        return;
      }
    }
  };
  tape->record(std::move(e));
  return out;
}

}  // namespace gradaccum::autograd
