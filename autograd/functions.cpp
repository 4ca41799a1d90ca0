// Forward and backward of each op, side by side (micrograd style): the forward computes the
// value and records, right under it, the rule that turns the output's gradient into the
// inputs' gradients.
#include "autograd/functions.h"

#include "autograd/op_support.h"

#include <memory>
#include <utility>

#include "kernels/l1_loss.h"
#include "kernels/linear.h"
#include "kernels/relu.h"
#include "kernels/window_scalars.h"

namespace gradaccum::autograd {

using detail::BackwardContext;
using detail::check_inputs;
using detail::LeafTarget;
using detail::make_result;
using detail::Tape;
using detail::tape_for;
using detail::TapeEntry;
using detail::VarData;

// ---- linear (+ fused ReLU) ----------------------------------------------------------------

Variable linear(const Variable& x, const Variable& w, const Variable& b, bool fuse_relu,
                const GemmConfig& config) {
  const bool has_bias = b.defined();
  check_inputs("linear", {{"x", &x}, {"weight", &w}, {"bias", has_bias ? &b : nullptr}});
  GA_CHECK(w.is_leaf() && (!has_bias || b.is_leaf()),
           "linear: weight and bias must be leaf Variables (parameters)");
  GA_CHECK(x.value().rank() == 2 && w.value().rank() == 2,
           "linear: expected x [N, in] and weight [out, in], got " << x.value().str() << " and "
                                                                   << w.value().str());
  Tensor y = Tensor::empty({x.shape()[0], w.shape()[0]}, x.dtype(), x.device());
  linear_forward(x.value(), w.value(), has_bias ? &b.value() : nullptr, y, fuse_relu, config);

  std::shared_ptr<Tape> tape = tape_for("linear", {&x, &w, has_bias ? &b : nullptr});
  Variable out = make_result(std::move(y), tape);
  if (!tape) return out;

  std::shared_ptr<VarData> xd = x.data(), wd = w.data(), bd = has_bias ? b.data() : nullptr;
  std::shared_ptr<VarData> yd = out.data();
  yd->relu_output = fuse_relu;
  TapeEntry e{fuse_relu ? "linear_relu" : "linear", yd, {xd, wd}, nullptr};
  if (bd) e.inputs.push_back(bd);
  // Backward: g = dy (times the ReLU mask y > 0 when fused, unless the consumer of y masked it
  // already); dx = g · W; dW = gᵀ · x; db = Σ g.
  // A weak reference to the output: the tape must not keep its own outputs alive in a cycle.
  std::weak_ptr<VarData> yw = yd;
  e.backward = [xd, wd, bd, yw, fuse_relu, config](BackwardContext& ctx) {
    std::shared_ptr<VarData> yv = yw.lock();
    const Tensor* dy = yv ? ctx.grad_of(*yv) : nullptr;
    if (dy == nullptr) return;
    Tensor masked;
    const Tensor* g = dy;
    if (fuse_relu && !yv->grad_masked) {
      masked = Tensor::empty(dy->shape(), dy->dtype(), dy->device());
      relu_backward(*dy, yv->value, masked, GradientMode::Overwrite);
      g = &masked;
    }
    // x from a fused linear + ReLU: dx comes out masked by x > 0 (that ReLU's backward, fused
    // into this product), and the layer below skips its own masking pass.
    const Tensor* relu_out = xd->relu_output ? &xd->value : nullptr;
    ctx.write_grad(
        *xd,
        [&](Tensor& dx, GradientMode mode) {
          linear_backward_input(*g, wd->value, dx, mode, relu_out, config);
        },
        relu_out != nullptr);
    const bool w_needs = ctx.wants(*wd);
    const bool b_needs = bd && ctx.wants(*bd);
    if (!w_needs && !b_needs) return;
    LeafTarget tw, tb;
    if (w_needs) tw = ctx.leaf_target(*wd);
    if (b_needs) tb = ctx.leaf_target(*bd);
    const bool direct = w_needs && (bd == nullptr ||
                                    (b_needs && tb.mode == tw.mode &&
                                     (tb.compensation == nullptr) == (tw.compensation == nullptr)));
    if (direct) {
      // The usual case: both gradients straight into the leaves' f32 buffers in one pass.
      KahanState kahan{tw.compensation, b_needs ? tb.compensation : nullptr};
      linear_backward_params(*g, xd->value, *tw.buffer, b_needs ? tb.buffer : nullptr, tw.mode,
                             tw.compensation ? &kahan : nullptr, config);
      ctx.mark_written(*wd);
      if (b_needs) ctx.mark_written(*bd);
      return;
    }
    // Frozen weight or bias, or the two in different states: one pass per gradient, each straight
    // into its leaf's target, so that each stays one chain from the stored value (a temporary
    // added afterwards would make the sum depend on the micro-batch split).
    if (w_needs) {
      KahanState kw{tw.compensation, nullptr};
      linear_backward_params(*g, xd->value, *tw.buffer, nullptr, tw.mode,
                             tw.compensation ? &kw : nullptr, config);
      ctx.mark_written(*wd);
    }
    if (b_needs) {
      // db comes with a dw: a discarded scratch one (and its compensation with Kahan).
      Tensor dw = Tensor::zeros(wd->value.shape(), DType::f32, g->device());
      Tensor dw_comp =
          tb.compensation ? Tensor::zeros(wd->value.shape(), DType::f32, g->device()) : Tensor();
      KahanState kb{&dw_comp, tb.compensation};
      linear_backward_params(*g, xd->value, dw, tb.buffer, tb.mode, tb.compensation ? &kb : nullptr,
                             config);
      ctx.mark_written(*bd);
    }
  };
  tape->record(std::move(e));
  return out;
}

// ---- relu -----------------------------------------------------------------------------------

Variable relu(const Variable& x) {
  check_inputs("relu", {{"x", &x}});
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  relu_forward(x.value(), y);

  std::shared_ptr<Tape> tape = tape_for("relu", {&x});
  Variable out = make_result(std::move(y), tape);
  if (!tape) return out;
  std::shared_ptr<VarData> xd = x.data();
  std::weak_ptr<VarData> yw = out.data();
  // Backward: dx = dy · (y > 0).
  TapeEntry e{"relu", out.data(), {xd}, [xd, yw](BackwardContext& ctx) {
                std::shared_ptr<VarData> yv = yw.lock();
                const Tensor* dy = yv ? ctx.grad_of(*yv) : nullptr;
                if (dy == nullptr) return;
                ctx.write_grad(*xd, [&](Tensor& dx, GradientMode mode) {
                  relu_backward(*dy, yv->value, dx, mode);
                });
              }};
  tape->record(std::move(e));
  return out;
}

// ---- l1_loss ----------------------------------------------------------------------------------

Variable l1_loss(const Variable& pred, const Variable& target, Reduction reduction) {
  check_inputs("l1_loss", {{"pred", &pred}, {"target", &target}});
  GA_CHECK(pred.shape() == target.shape(), "l1_loss: pred " << pred.value().str() << " and target "
                                                            << target.value().str()
                                                            << " must have the same shape");
  GA_CHECK(pred.value().rank() >= 1,
           "l1_loss: pred must have a sample dimension, got " << pred.value().str());
  const std::int64_t elements = pred.value().numel();
  // The sum (which the window continues) and the reduced value, from one launch.
  Tensor sum = Tensor::empty({1}, DType::f32, pred.device());
  Tensor value = Tensor::empty({1}, DType::f32, pred.device());
  L1ForwardExtras extras;
  extras.reduced = &value;
  extras.reduced_factor = reduction == Reduction::Mean ? 1.0 / static_cast<double>(elements) : 1.0;
  l1_loss_forward(pred.value(), target.value(), sum, GradientMode::Overwrite, extras);

  std::shared_ptr<Tape> tape = tape_for("l1_loss", {&pred, &target});
  Variable out = make_result(std::move(value), tape);
  auto info = std::make_unique<LossInfo>();
  info->reduction = reduction;
  info->samples = pred.shape()[0];
  info->elements = elements;
  out.data()->loss = std::move(info);
  out.data()->loss_sum = std::move(sum);
  if (!tape) return out;

  std::shared_ptr<VarData> pd = pred.data(), td = target.data();
  std::weak_ptr<VarData> lw = out.data();
  // Backward: dpred = sign(pred - target) · factor · (loss scale); dtarget = -dpred. The factor
  // is the root's (reduction, seed) or, for a loss something else consumed, its gradient.
  TapeEntry e{"l1_loss", out.data(), {pd, td}, [pd, td, lw](BackwardContext& ctx) {
                std::shared_ptr<VarData> lv = lw.lock();
                if (!lv) return;
                float factor = 0.0f;
                const Tensor* scale = nullptr;
                if (ctx.is_root(*lv)) {
                  factor = ctx.root_factor();
                  scale = ctx.options().loss_scale;
                } else if (const Tensor* g = ctx.grad_of(*lv)) {
                  double f = g->to_vector()[0];
                  if (lv->loss->reduction == Reduction::Mean) f /= double(lv->loss->elements);
                  factor = static_cast<float>(f);
                } else {
                  return;
                }
                ctx.write_grad(*pd, [&](Tensor& d, GradientMode mode) {
                  l1_loss_backward(pd->value, td->value, factor, scale, d, mode);
                });
                ctx.write_grad(*td, [&](Tensor& d, GradientMode mode) {
                  l1_loss_backward(td->value, pd->value, factor, scale, d, mode);
                });
              }};
  tape->record(std::move(e));
  return out;
}

}  // namespace gradaccum::autograd
