#include "optim/batch_norm_replay.h"

#include <cstdint>

#include "kernels/batch_norm.h"
#include "kernels/exact_sum.h"

namespace gradaccum::optim {
namespace {

using nn::BatchNormReplayState;

void find_layers(nn::Module& m, std::vector<nn::BatchNorm1d*>& out) {
  if (auto* bn = dynamic_cast<nn::BatchNorm1d*>(&m)) out.push_back(bn);
  for (const auto& [name, child] : m.named_children())
    find_layers(*child, out);
}

// Detaches the layers' replay state however backward() ends.
struct Detach {
  std::vector<nn::BatchNorm1d*>& layers;
  ~Detach() {
    for (nn::BatchNorm1d* l : layers)
      l->set_replay(nullptr);
  }
};

}  // namespace

BatchNormReplay::BatchNormReplay(AccumulationWindow& window, nn::Module& model, LossFn loss)
    : window_(window), model_(model), loss_(std::move(loss)) {
  GA_CHECK(loss_ != nullptr, "BatchNormReplay: no loss function");
  GA_CHECK(window.options().process_group() == nullptr,
           "BatchNormReplay: window-mode BatchNorm across ranks is not supported (each pass's "
           "sums would have to be reduced across the ranks); use one process, or ghost batch "
           "norm (micro-batch statistics)");
  GA_CHECK(window.options().overflow() == OverflowPolicy::SkipStep,
           "BatchNormReplay: window-mode BatchNorm needs the skip-step overflow policy (dropping "
           "a micro-batch would change the window statistics already used); got "
               << overflow_policy_name(window.options().overflow()));
  find_layers(model, layers_);
}

BatchNormReplay::~BatchNormReplay() {
  for (nn::BatchNorm1d* l : layers_)
    l->set_replay(nullptr);
}

void BatchNormReplay::submit(Tensor x, Tensor y) {
  GA_CHECK(x.defined() && y.defined() && x.rank() >= 1 && y.rank() >= 1,
           "BatchNormReplay::submit: expected x [n, in] and y [n, ...]");
  GA_CHECK(x.shape()[0] >= 1 && x.shape()[0] == y.shape()[0],
           "BatchNormReplay::submit: expected x and y with the same number of rows >= 1, got "
               << x.str() << " and " << y.str());
  kept_.push_back({Variable(std::move(x)), Variable(std::move(y))});
}

Variable BatchNormReplay::loss_of(const MicroBatch& mb) {
  return loss_(model_.forward(mb.x), mb.y);
}

void BatchNormReplay::backward() {
  GA_CHECK(!kept_.empty(), "BatchNormReplay::backward: no micro-batch was submitted");
  GA_CHECK(model_.is_training(),
           "BatchNormReplay::backward: the model is in evaluation mode; call model.train()");
  forward_passes_ = 0;
  backward_passes_ = 0;
  std::uint64_t rows = 0;
  for (const MicroBatch& mb : kept_)
    rows += static_cast<std::uint64_t>(mb.x.shape()[0]);
  ExactSum::check_addends(rows, "BatchNormReplay (rows in one window)");
  {
    Detach detach{layers_};
    for (nn::BatchNorm1d* l : layers_) {
      l->set_replay(std::make_shared<BatchNormReplayState>(l->options().num_features(),
                                                           l->running_mean().device()));
    }
    run_statistics_passes();
    run_backward_passes();
    run_final_pass();
  }
  kept_.clear();
}

void BatchNormReplay::run_statistics_passes() {
  for (;;) {
    auto pass = std::make_shared<BatchNormReplayState::StatisticsPass>();
    bool pending = false;
    for (nn::BatchNorm1d* l : layers_) {
      BatchNormReplayState& r = *l->replay();
      r.pass = BatchNormReplayState::Pass::Statistics;
      r.statistics_pass = pass;
      pending = pending || r.stage != BatchNormReplayState::Stage::Known;
    }
    if (!pending) return;
    {
      autograd::NoGradGuard no_grad;
      for (const MicroBatch& mb : kept_)
        model_.forward(mb.x);
    }
    ++forward_passes_;
    nn::BatchNorm1d* collected = nullptr;
    for (nn::BatchNorm1d* l : layers_) {
      if (pass->collecting == l->replay()) collected = l;
    }
    GA_CHECK(collected != nullptr,
             "BatchNormReplay: a BatchNorm1d layer of the model is not reached by its forward");
    collected->finish_statistics_stage();
  }
}

void BatchNormReplay::run_backward_passes() {
  autograd::BackwardOptions o = window_.backward_options();
  o.target = autograd::LeafGradTarget::None;
  o.on_leaf_final = nullptr;
  for (;;) {
    auto pass = std::make_shared<autograd::BatchNormPass>();
    bool pending = false;
    for (nn::BatchNorm1d* l : layers_) {
      BatchNormReplayState& r = *l->replay();
      r.pass = BatchNormReplayState::Pass::Backward;
      r.sums->pass = pass;
      r.sums->collected = false;
      pending = pending || !r.sums_known;
    }
    if (!pending) return;
    for (const MicroBatch& mb : kept_)
      loss_of(mb).backward(o);
    ++forward_passes_;
    ++backward_passes_;
    nn::BatchNorm1d* collected = nullptr;
    for (nn::BatchNorm1d* l : layers_) {
      if (l->replay()->sums->collected) collected = l;
    }
    GA_CHECK(collected != nullptr,
             "BatchNormReplay: the loss's backward does not reach a "
             "BatchNorm1d layer of the model (is its output used?)");
    BatchNormReplayState& r = *collected->replay();
    r.sums->round();
    r.sums_known = true;
  }
}

void BatchNormReplay::run_final_pass() {
  for (nn::BatchNorm1d* l : layers_)
    l->replay()->sums->params_pending = true;
  for (const MicroBatch& mb : kept_)
    window_.backward(loss_of(mb));
  ++forward_passes_;
  ++backward_passes_;
}

}  // namespace gradaccum::optim
