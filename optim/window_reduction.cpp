#include "optim/window_reduction.h"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/cuda_device.h"
#include "dist/group_error.h"

namespace gradaccum::optim {
namespace {

using dist::ReduceOp;

// The header words, in their segments' order.
enum CountWord { kSubmitted, kSamples, kElements, kMicroBatches, kDropped, kCountWords };
enum MinWord { kGrowthTracker, kMinLayout, kMinWords };
enum MaxWord { kSkip, kSawMean, kSawSum, kMaxLayout, kMaxWords };

// Copies between the window's memory (host or device) and the host buffer.
void to_host(void* dst, const void* src, std::size_t bytes, Device d) {
  if (d == Device::CUDA) {
    detail::cuda_copy(dst, src, bytes, detail::CopyKind::DeviceToHost);
  } else {
    std::memcpy(dst, src, bytes);
  }
}
void from_host(void* dst, const void* src, std::size_t bytes, Device d) {
  if (d == Device::CUDA) {
    detail::cuda_copy(dst, src, bytes, detail::CopyKind::HostToDevice);
  } else {
    std::memcpy(dst, src, bytes);
  }
}

void read_floats(const Tensor& t, float* dst) {
  to_host(dst, t.raw_data(), t.nbytes(), t.device());
}
void write_floats(Tensor& t, const float* src) {
  from_host(t.raw_data(), src, t.nbytes(), t.device());
}
void read_limbs(const ExactSum& e, std::uint64_t* dst) {
  to_host(dst, e.limbs().data(), e.limbs().bytes(), e.device());
}
void write_limbs(ExactSum& e, const std::uint64_t* src) {
  from_host(e.limbs().data(), src, e.limbs().bytes(), e.device());
}

}  // namespace

WindowReduction::WindowReduction(std::shared_ptr<dist::ProcessGroup> pg,
                                 const std::vector<autograd::Variable>& params, Sums sums,
                                 std::size_t bucket_bytes)
    : pg_(std::move(pg)), sums_(sums) {
  const bool kahan = sums == Sums::Kahan;
  GA_CHECK(pg_ != nullptr, "WindowReduction: no process group");
  counts_seg_ = buffer_.add(ReduceOp::SumU64, kCountWords, "counts");
  min_seg_ = buffer_.add(ReduceOp::MinU64, kMinWords, "growth tracker, layout");
  max_seg_ = buffer_.add(ReduceOp::MaxU64, kMaxWords, "flags, layout");
  loss_seg_ = buffer_.add(ReduceOp::SumKahanF32, 1, "loss sum");
  std::size_t largest = 0;
  if (sums == Sums::Exact)
    exact_loss_seg_ = buffer_.add(ReduceOp::SumU64, ExactSum::kLimbs, "loss");
  for (const autograd::Variable& p : params) {
    const auto n = static_cast<std::size_t>(p.value().numel());
    const std::string name = "gradient of '" + p.name() + "'";
    if (sums == Sums::Exact) {
      param_segs_.push_back(buffer_.add(ReduceOp::SumU64, n * ExactSum::kLimbs, name));
    } else {
      param_segs_.push_back(buffer_.add(kahan ? ReduceOp::SumKahanF32 : ReduceOp::SumF32, n, name));
    }
    largest = std::max(largest, n);
  }
  buffer_.allocate();
  header_words_ =
      param_segs_.empty() ? buffer_.words() : buffer_.segments()[param_segs_[0]].word_offset;
  views_ = sums == Sums::F32 && !params.empty() && params.front().device() == Device::CPU;
  if (kahan && !params.empty() && params.front().device() == Device::CUDA) {
    scratch_.resize(2 * largest);
  }
  if (bucket_bytes > 0) {
    GA_CHECK(views_ || params.empty(),
             "WindowReduction: overlapped buckets need f32 gradient sums on the CPU");
    make_buckets(params, bucket_bytes);
  }
}

// Out of line: Bucket holds a PendingReduction, whose destructor waits for an unfinished one.
WindowReduction::~WindowReduction() = default;

void WindowReduction::make_buckets(const std::vector<autograd::Variable>& params,
                                   std::size_t bucket_bytes) {
  const auto& segs = buffer_.segments();
  bucket_of_.assign(params.size(), 0);
  final_.assign(params.size(), false);
  std::size_t last = params.size(), bytes = 0;
  for (std::size_t i = params.size(); i-- > 0;) {
    bytes += segs[param_segs_[i]].words * dist::kWordBytes;
    bucket_of_[i] = buckets_.size();
    if (bytes < bucket_bytes && i > 0) continue;
    const std::size_t last_param = last - 1;
    buckets_.push_back(
        {i, last_param, segs[param_segs_[i]].word_offset,
         segs[param_segs_[last_param]].word_offset + segs[param_segs_[last_param]].words,
         last_param - i + 1, nullptr});
    last = i;
    bytes = 0;
  }
}

void WindowReduction::gradient_final(std::size_t i) {
  GA_CHECK(overlaps() && i < final_.size(), "WindowReduction::gradient_final: parameter "
                                                << i << " of " << final_.size()
                                                << " in a window without buckets");
  if (final_[i]) return;
  final_[i] = true;
  buckets_[bucket_of_[i]].pending -= 1;
  start_ready_buckets();
  // MPI moves a nonblocking collective on only when called: each gradient finished is a chance.
  for (std::size_t b = 0; b < next_bucket_; ++b)
    buckets_[b].reduction->test();
}

void WindowReduction::start_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].pending == 0) {
    Bucket& b = buckets_[next_bucket_];
    b.reduction = pg_->allreduce_start(buffer_, b.begin_word, b.end_word);
    ++next_bucket_;
  }
}

void WindowReduction::start_all_buckets() {
  for (Bucket& b : buckets_)
    b.pending = 0;
  start_ready_buckets();
}

void WindowReduction::finish_buckets() {
  for (Bucket& b : buckets_) {
    b.reduction->wait();
    b.reduction.reset();
    b.pending = b.last_param - b.first_param + 1;
  }
  final_.assign(final_.size(), false);
  next_bucket_ = 0;
}

float* WindowReduction::gradient_memory(std::size_t i) {
  GA_CHECK(i < param_segs_.size(), "WindowReduction::gradient_memory: parameter " << i);
  return views_ ? buffer_.f32(param_segs_[i]) : nullptr;
}

bool WindowReduction::holds(const void* p) const {
  // As integers: ordering pointers into different allocations is unspecified.
  const auto b = reinterpret_cast<std::uintptr_t>(buffer_.data());
  const auto q = reinterpret_cast<std::uintptr_t>(p);
  return b != 0 && q >= b && q < b + buffer_.bytes();
}

void WindowReduction::pack(const WindowState& s, const Tally& local) {
  const WindowCounts c = read_window_counts(*s.counts);
  std::uint64_t* counts = buffer_.u64(counts_seg_);
  counts[kSubmitted] = local.submitted;
  counts[kSamples] = c.samples;
  counts[kElements] = c.elements;
  counts[kMicroBatches] = c.micro_batches;
  counts[kDropped] = c.dropped;
  const std::uint64_t layout = buffer_.layout_hash();
  std::uint64_t* mins = buffer_.u64(min_seg_);
  mins[kGrowthTracker] = c.growth_tracker;
  mins[kMinLayout] = layout;
  std::uint64_t* maxs = buffer_.u64(max_seg_);
  maxs[kSkip] = s.skip->raised() ? 1 : 0;
  maxs[kSawMean] = local.has_reduction && local.reduction == Reduction::Mean;
  maxs[kSawSum] = local.has_reduction && local.reduction == Reduction::Sum;
  maxs[kMaxLayout] = layout;
  float* loss = buffer_.f32(loss_seg_);
  read_floats(*s.loss_sum, &loss[0]);
  read_floats(*s.loss_sum_comp, &loss[1]);

  if (sums_ == Sums::Exact) {
    read_limbs(*s.exact_loss, buffer_.u64(exact_loss_seg_));
    for (std::size_t i = 0; i < param_segs_.size(); ++i)
      read_limbs((*s.exact)[i], buffer_.u64(param_segs_[i]));
    return;
  }
  for (std::size_t i = 0; i < param_segs_.size(); ++i) {
    const autograd::Variable& p = (*s.params)[i];
    float* dst = buffer_.f32(param_segs_[i]);
    if (sums_ == Sums::F32) {
      // A view of the buffer already is the buffer; else straight into it (page-locked).
      if (p.grad().raw_data() != dst) read_floats(p.grad(), dst);
      continue;
    }
    const auto n = static_cast<std::size_t>(p.value().numel());
    const float* sum = p.grad().data<float>();
    const float* comp = p.grad_compensation().data<float>();
    if (p.grad().is_cuda()) {
      read_floats(p.grad(), scratch_.data());
      read_floats(p.grad_compensation(), scratch_.data() + n);
      sum = scratch_.data();
      comp = scratch_.data() + n;
    }
    for (std::size_t k = 0; k < n; ++k) {
      dst[2 * k] = sum[k];
      dst[2 * k + 1] = comp[k];
    }
  }
}

WindowCounts WindowReduction::unpack(const WindowState& s) {
  const std::uint64_t* counts = buffer_.u64(counts_seg_);
  WindowCounts c;
  c.samples = counts[kSamples];
  c.elements = counts[kElements];
  c.micro_batches = counts[kMicroBatches];
  c.dropped = counts[kDropped];
  c.growth_tracker = buffer_.u64(min_seg_)[kGrowthTracker];
  write_window_counts(*s.counts, c);
  s.skip->set(buffer_.u64(max_seg_)[kSkip] != 0);
  const float* loss = buffer_.f32(loss_seg_);
  write_floats(*s.loss_sum, &loss[0]);
  write_floats(*s.loss_sum_comp, &loss[1]);

  if (sums_ == Sums::Exact) {
    write_limbs(*s.exact_loss, buffer_.u64(exact_loss_seg_));
    for (std::size_t i = 0; i < param_segs_.size(); ++i)
      write_limbs((*s.exact)[i], buffer_.u64(param_segs_[i]));
    return c;
  }
  for (std::size_t i = 0; i < param_segs_.size(); ++i) {
    autograd::Variable& p = (*s.params)[i];
    const float* src = buffer_.f32(param_segs_[i]);
    if (sums_ == Sums::F32) {
      if (p.grad().raw_data() != src) write_floats(p.grad(), src);
      continue;
    }
    const auto n = static_cast<std::size_t>(p.value().numel());
    const bool cuda = p.grad().is_cuda();
    float* sum = cuda ? scratch_.data() : p.grad().data<float>();
    float* comp = cuda ? scratch_.data() + n : p.grad_compensation().data<float>();
    for (std::size_t k = 0; k < n; ++k) {
      sum[k] = src[2 * k];
      comp[k] = src[2 * k + 1];
    }
    if (cuda) {
      write_floats(p.grad(), sum);
      write_floats(p.grad_compensation(), comp);
    }
  }
  return c;
}

WindowReduction::Totals WindowReduction::reduce(const WindowState& s, const Tally& local) {
  GA_CHECK(s.params != nullptr && s.params->size() == param_segs_.size(),
           "WindowReduction: expected " << param_segs_.size() << " parameters");
  GA_CHECK(sums_ != Sums::Exact || (s.exact != nullptr && s.exact->size() == param_segs_.size() &&
                                    s.exact_loss != nullptr),
           "WindowReduction: an exact window's reduction needs its exact sums");
  const auto t0 = std::chrono::steady_clock::now();
  pack(s, local);
  if (overlaps()) {
    // The gradients' buckets (most already in flight), then the counts, flags and loss.
    start_all_buckets();
    finish_buckets();
    pg_->allreduce_start(buffer_, 0, header_words_)->wait();
  } else {
    pg_->allreduce(buffer_);
  }

  // Every rank now reads the same words, so each check below fails on all of them or on none.
  const std::uint64_t* counts = buffer_.u64(counts_seg_);
  const std::uint64_t* mins = buffer_.u64(min_seg_);
  const std::uint64_t* maxs = buffer_.u64(max_seg_);
  GA_GROUP_CHECK(
      mins[kMinLayout] == maxs[kMaxLayout],
      "step: the ranks' windows have different layouts (parameters or accumulation mode): "
      "expected the same on every rank");
  GA_GROUP_CHECK(counts[kSubmitted] > 0,
                 "step: no rank's window holds a sample (0 micro-batches on "
                     << pg_->size() << " ranks): there is nothing to average");
  // The limbs of every rank were summed: their addends together must fit the limit.
  GA_GROUP_CHECK(sums_ != Sums::Exact || counts[kSubmitted] <= ExactSum::kMaxAddends,
                 "step: the ranks' exact windows hold " << counts[kSubmitted]
                                                        << " micro-batches together; expected at "
                                                           "most "
                                                        << ExactSum::kMaxAddends);
  GA_GROUP_CHECK(maxs[kSawMean] == 0 || maxs[kSawSum] == 0,
                 "step: the ranks' micro-batches mix the mean and sum reductions: expected one "
                 "reduction for the whole window");
  Totals t;
  t.counts = unpack(s);
  last_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.tally.submitted = counts[kSubmitted];
  t.tally.has_reduction = true;
  t.tally.reduction = maxs[kSawSum] != 0 ? Reduction::Sum : Reduction::Mean;
  return t;
}

}  // namespace gradaccum::optim
