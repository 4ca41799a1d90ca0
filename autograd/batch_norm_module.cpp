#include "autograd/batch_norm_module.h"

#include <cmath>
#include <utility>

#include "kernels/batch_norm.h"

namespace gradaccum::nn {

BatchNormReplayState::BatchNormReplayState(std::int64_t channels, Device device)
    : exact({channels}, device),
      nonfinite(device),
      statistics(std::make_shared<autograd::BatchNormStatistics>()),
      var(Tensor::zeros({channels}, DType::f32, device)),
      sums(std::make_shared<autograd::BatchNormWindowSums>(channels, device)) {
  statistics->mean = Tensor::zeros({channels}, DType::f32, device);
  statistics->invstd = Tensor::zeros({channels}, DType::f32, device);
}

BatchNorm1d::BatchNorm1d(const BatchNormOptions& options) : options_(options) {
  const std::int64_t c = options.num_features();
  GA_CHECK(c > 0, "BatchNorm1d: num_features must be > 0, got " << c);
  GA_CHECK(std::isfinite(options.eps()) && options.eps() >= 0.0,
           "BatchNorm1d: eps must be finite and >= 0, got " << options.eps());
  GA_CHECK(
      std::isfinite(options.momentum()) && options.momentum() >= 0.0 && options.momentum() <= 1.0,
      "BatchNorm1d: momentum must be in [0, 1], got " << options.momentum());
  if (options.affine()) {
    weight_ = register_parameter("weight", Tensor::full({c}, 1.0f, DType::f32, Device::CPU));
    bias_ = register_parameter("bias", Tensor::zeros({c}, DType::f32, Device::CPU));
  }
  running_mean_ = &register_buffer("running_mean", Tensor::zeros({c}, DType::f32, Device::CPU));
  running_var_ = &register_buffer("running_var", Tensor::full({c}, 1.0f, DType::f32, Device::CPU));
}

void BatchNorm1d::check_input(const Variable& x) const {
  const std::int64_t c = options_.num_features();
  GA_CHECK(
      x.defined() && x.value().rank() == 2 && x.shape()[1] == c,
      "BatchNorm1d(" << c << "): expected input [N, " << c << "], got "
                     << (x.defined() ? x.value().str() : std::string("an undefined Variable")));
  GA_CHECK(x.device() == running_mean_->device(),
           "BatchNorm1d(" << c << "): the input is on " << device_name(x.device())
                          << ", the layer on " << device_name(running_mean_->device())
                          << " (move the model and the data to one device)");
}

Variable BatchNorm1d::forward(const Variable& x) {
  check_input(x);
  using Rule = autograd::BatchNormBackward::Rule;
  const std::int64_t c = options_.num_features();
  const auto eps = static_cast<float>(options_.eps());
  if (!is_training()) {
    auto stats = std::make_shared<autograd::BatchNormStatistics>();
    stats->mean = running_mean_->clone();
    stats->invstd = Tensor::empty({c}, DType::f32, x.device());
    batch_norm_invstd(*running_var_, eps, stats->invstd);
    return autograd::batch_norm(x, weight_, bias_, std::move(stats), {Rule::Constant, nullptr});
  }
  if (replay_) return forward_replayed(x);
  // Ghost batch norm: this batch's own statistics (PyTorch's training mode).
  const std::int64_t n = x.shape()[0];
  GA_CHECK(n > 1, "BatchNorm1d(" << c
                                 << "): expected more than 1 value per channel when training, got "
                                    "input "
                                 << x.value().str()
                                 << " (a micro-batch of one row: use the window's statistics, "
                                    "optim::BatchNormReplay / --batch-norm window)");
  NonFiniteFlag nonfinite(x.device());
  auto stats = std::make_shared<autograd::BatchNormStatistics>();
  stats->mean = Tensor::empty({c}, DType::f32, x.device());
  stats->invstd = Tensor::empty({c}, DType::f32, x.device());
  Tensor var = Tensor::empty({c}, DType::f32, x.device());
  {
    ExactSum sum({c}, x.device());
    batch_norm_sum_rows(x.value(), nullptr, BatchNormRowSum::Values, sum, &nonfinite);
    batch_norm_mean(sum, n, &nonfinite, stats->mean);
    sum.zero();
    batch_norm_sum_rows(x.value(), &stats->mean, BatchNormRowSum::SquaredDeviations, sum,
                        &nonfinite);
    batch_norm_variance(sum, n, eps, &nonfinite, var, stats->invstd);
  }
  batch_norm_update_running(*running_mean_, *running_var_, stats->mean, var, n,
                            static_cast<float>(options_.momentum()));
  return autograd::batch_norm(x, weight_, bias_, std::move(stats), {Rule::Batch, nullptr});
}

// A replayed window: statistics passes add to the window's sums (the first layer the forward
// reaches whose statistics are unknown, the others pass x through: their output is not used);
// backward passes normalise with the window's statistics.
Variable BatchNorm1d::forward_replayed(const Variable& x) {
  BatchNormReplayState& r = *replay_;
  using Rule = autograd::BatchNormBackward::Rule;
  if (r.pass == BatchNormReplayState::Pass::Statistics) {
    if (r.stage == BatchNormReplayState::Stage::Known) {
      return autograd::batch_norm(x, weight_, bias_, r.statistics, {Rule::Window, r.sums});
    }
    if (r.statistics_pass->collecting == nullptr) r.statistics_pass->collecting = &r;
    if (r.statistics_pass->collecting != &r) return x;
    const bool mean = r.stage == BatchNormReplayState::Stage::Mean;
    batch_norm_sum_rows(x.value(), mean ? nullptr : &r.statistics->mean,
                        mean ? BatchNormRowSum::Values : BatchNormRowSum::SquaredDeviations,
                        r.exact, &r.nonfinite);
    r.rows += x.shape()[0];
    return x;
  }
  GA_CHECK(r.stage == BatchNormReplayState::Stage::Known,
           "BatchNorm1d: a backward pass before the window's statistics are known");
  return autograd::batch_norm(x, weight_, bias_, r.statistics,
                              {r.sums_known ? Rule::Window : Rule::Collect, r.sums});
}

void BatchNorm1d::finish_statistics_stage() {
  GA_CHECK(replay_ != nullptr, "BatchNorm1d::finish_statistics_stage: no replay");
  BatchNormReplayState& r = *replay_;
  const std::int64_t c = options_.num_features();
  GA_CHECK(!r.nonfinite.raised(),
           "BatchNorm1d(" << c
                          << "): the window's input holds a non-finite value (inf or NaN); its "
                             "statistics would be NaN");
  if (r.stage == BatchNormReplayState::Stage::Mean) {
    GA_CHECK(r.rows > 1, "BatchNorm1d(" << c
                                        << "): expected more than 1 value per channel when "
                                           "training, got a window of "
                                        << r.rows << " row");
    batch_norm_mean(r.exact, r.rows, nullptr, r.statistics->mean);
    r.stage = BatchNormReplayState::Stage::Variance;
  } else {
    batch_norm_variance(r.exact, r.rows, static_cast<float>(options_.eps()), nullptr, r.var,
                        r.statistics->invstd);
    r.stage = BatchNormReplayState::Stage::Known;
    // The big batch's update: once, with the window's statistics over all its rows.
    batch_norm_update_running(*running_mean_, *running_var_, r.statistics->mean, r.var, r.rows,
                              static_cast<float>(options_.momentum()));
    r.sums->count = r.rows;
  }
  r.exact.zero();
  r.rows = 0;
}

}  // namespace gradaccum::nn
