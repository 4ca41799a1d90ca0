#include "study/accumulation_study.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "autograd/nn.h"
#include "core/cuda_device.h"
#include "core/half.h"
#include "core/random.h"
#include "kernels/accumulate.h"
#include "kernels/exact_sum.h"
#include "kernels/nonfinite_flag.h"

namespace gradaccum::study {
namespace {

struct ModeInfo {
  AccumMode mode;
  const char* name;
  DType grad;
  DType acc;
};

constexpr ModeInfo kModes[] = {
    {AccumMode::F32Naive, "naive", DType::f32, DType::f32},
    {AccumMode::F32Kahan, "kahan", DType::f32, DType::f32},
    {AccumMode::F16InF16, "f16-acc", DType::f16, DType::f16},
    {AccumMode::F16InF32, "f32-acc", DType::f16, DType::f32},
    {AccumMode::F16InF32Kahan, "f32-acc-kahan", DType::f16, DType::f32},
    {AccumMode::F16StaticScale, "static-scale", DType::f16, DType::f32},
    {AccumMode::F16DynamicScale, "dynamic-scale", DType::f16, DType::f32},
    {AccumMode::F32Exact, "exact", DType::f32, DType::f32},
};

struct SourceInfo {
  GradientSource source;
  const char* name;
  const char* description;
};

constexpr SourceInfo kSources[] = {
    {GradientSource::Mlp, "mlp", "MLP parameter gradients, one micro-batch each (realistic)"},
    {GradientSource::RandomSign, "random-sign", "i.i.d. uniform(-1, 1)"},
    {GradientSource::Constant, "constant", "one constant addend"},
    {GradientSource::StagnationF32, "stagnation-f32", "1, then [0.5, 1) * 2^-24 (f32 stagnation)"},
    {GradientSource::StagnationF16, "stagnation-f16", "1, then [0.5, 1) * 2^-11 (f16 stagnation)"},
    {GradientSource::NearF16Min, "near-f16-min", "log-uniform in [2^-26, 2^-10] (fp16 underflow)"},
    {GradientSource::NearF16Max, "near-f16-max", "[0.5, 1) * 65504 (fp16 overflow)"},
    {GradientSource::Provided, "provided", "the caller's micro-batch gradients"},
};

const ModeInfo& info(AccumMode mode) {
  for (const ModeInfo& m : kModes) {
    if (m.mode == mode) return m;
  }
  GA_FAIL("unknown accumulation mode " << static_cast<int>(mode));
}

const SourceInfo& info(GradientSource source) {
  for (const SourceInfo& s : kSources) {
    if (s.source == source) return s;
  }
  GA_FAIL("unknown gradient source " << static_cast<int>(source));
}

bool is_kahan(AccumMode m) {
  return m == AccumMode::F32Kahan || m == AccumMode::F16InF32Kahan;
}
bool is_scaled(AccumMode m) {
  return m == AccumMode::F16StaticScale || m == AccumMode::F16DynamicScale;
}

// A seed per (options.seed, source), so that the sources draw unrelated values.
std::uint64_t source_seed(std::uint64_t seed, GradientSource source) {
  return seed * 0x9E3779B97F4A7C15ull +
         0x5851F42D4C957F2Dull * (static_cast<std::uint64_t>(source) + 1);
}

nn::Sequential make_mlp(const StudyOptions& o, std::uint64_t seed) {
  return nn::Sequential(
      {{"fc1", nn::Linear(nn::LinearOptions(o.mlp_in, o.mlp_hidden).seed(seed))},
       {"relu", nn::ReLU()},
       {"fc2", nn::Linear(nn::LinearOptions(o.mlp_hidden, o.mlp_out).seed(seed + 1))}});
}

// The per-micro-batch parameter gradients of the MLP, computed with the engine on the CPU: the
// L1 loss of each micro-batch backpropagated as a sum (an accumulation window's convention).
void build_mlp_pool(const StudyOptions& o, std::int64_t rows, std::vector<float>& values,
                    std::int64_t& entries) {
  const std::int64_t mb = o.mlp_micro_batch;
  const std::uint64_t seed = source_seed(o.seed, GradientSource::Mlp);
  Tensor x = uniform({rows * mb, o.mlp_in}, -1.0f, 1.0f, seed);
  Tensor y;
  {
    nn::Sequential teacher = make_mlp(o, seed + 1000003);
    autograd::NoGradGuard no_grad;
    autograd::Variable t = teacher.forward(autograd::Variable(x.clone()));
    y = t.value().clone();
  }
  nn::Sequential model = make_mlp(o, seed + 17);
  const std::vector<autograd::Variable> params = model.parameters();
  entries = 0;
  for (const autograd::Variable& p : params)
    entries += p.value().numel();
  values.resize(static_cast<std::size_t>(rows * entries));
  autograd::BackwardOptions bo;
  bo.loss_as_sum = true;
  bo.target = autograd::LeafGradTarget::Scratch;
  float* out = values.data();
  for (std::int64_t r = 0; r < rows; ++r) {
    autograd::Variable xb(x.rows(r * mb, (r + 1) * mb));
    autograd::Variable yb(y.rows(r * mb, (r + 1) * mb));
    autograd::l1_loss(model.forward(xb), yb, Reduction::Sum).backward(bo);
    for (const autograd::Variable& p : params) {
      const Tensor& g = p.scratch_grad();
      std::memcpy(out, g.data<float>(), static_cast<std::size_t>(g.numel()) * sizeof(float));
      out += g.numel();
    }
  }
}

// Accumulates micro-batches one at a time in one mode and reads the metrics at any point.
class Runner {
 public:
  Runner(AccumMode mode, const GradientPool& pool, const StudyOptions& o)
      : mode_(mode), pool_(pool), o_(o), n_(pool.entries()) {
    const Device dev = o.device;
    GA_CHECK(dev == Device::CPU || cuda_available(),
             "accumulation study: --device cuda asked for, but "
                 << (built_with_cuda() ? "no CUDA device is available"
                                       : "gradaccum was built without CUDA"));
    const ModeInfo& m = info(mode);
    acc_ = Tensor::zeros({n_}, m.acc, dev);
    if (is_kahan(mode)) comp_ = Tensor::zeros({n_}, DType::f32, dev);
    if (mode == AccumMode::F32Exact) exact_ = ExactSum({n_}, dev);
    g_host_ = Tensor::zeros({n_}, m.grad, Device::CPU);
    if (dev != Device::CPU) g_dev_ = Tensor::zeros({n_}, m.grad, dev);
    ref_.assign(static_cast<std::size_t>(n_), 0.0);
    if (m.grad == DType::f16) {
      bits_.resize(static_cast<std::size_t>(pool.rows() * n_));
      rows_.resize(static_cast<std::size_t>(pool.rows()));
    }
    if (is_scaled(mode)) {
      scale_host_ = Tensor::zeros({1}, DType::f32, Device::CPU);
      inv_scale_ = Tensor::zeros({1}, DType::f32, dev);
      if (mode == AccumMode::F16DynamicScale) {
        const optim::LossScaling& d = o.dynamic_scaling;
        GA_CHECK(d.init_scale > 0.0f && d.backoff_factor > 0.0f && d.backoff_factor < 1.0f &&
                     d.growth_factor > 1.0f && d.growth_interval > 0,
                 "accumulation study: invalid dynamic loss scaling (init "
                     << d.init_scale << ", backoff " << d.backoff_factor << ", growth "
                     << d.growth_factor << ", interval " << d.growth_interval << ")");
        flag_ = std::make_unique<NonFiniteFlag>(dev);
        set_scale(d.init_scale);
      } else {
        GA_CHECK(o.static_scale > 0.0f && std::isfinite(o.static_scale),
                 "accumulation study: invalid static loss scale " << o.static_scale);
        set_scale(o.static_scale);
      }
      min_scale_ = max_scale_ = scale_;
    }
  }

  void add(std::int64_t i) {
    const float* x = pool_.addend(i);
    bool counted = true;
    Tensor& g = o_.device == Device::CPU ? g_host_ : g_dev_;
    if (info(mode_).grad == DType::f32) {
      std::memcpy(g_host_.data<float>(), x, static_cast<std::size_t>(n_) * sizeof(float));
      if (o_.device != Device::CPU) g_dev_.copy_from(g_host_);
      if (mode_ == AccumMode::F32Exact) {
        exact_.add(g);
      } else {
        AccumulateOptions ao;
        if (is_kahan(mode_)) ao.compensation = &comp_;
        accumulate(acc_, g, ao);
      }
    } else {
      const RowInfo& r = convert(pool_.row_of(i));
      nonzero_ += r.nonzero;
      underflowed_ += r.underflowed;
      std::memcpy(g_host_.data<std::uint16_t>(),
                  &bits_[static_cast<std::size_t>(pool_.row_of(i) * n_)],
                  static_cast<std::size_t>(n_) * sizeof(std::uint16_t));
      if (o_.device != Device::CPU) g_dev_.copy_from(g_host_);
      AccumulateOptions ao;
      if (is_kahan(mode_)) ao.compensation = &comp_;
      if (is_scaled(mode_)) ao.scale = &inv_scale_;
      if (mode_ == AccumMode::F16DynamicScale) {
        // Decided on the device, as a window's drop-micro-batch policy does: a non-finite
        // gradient raises the flag and the accumulation skips itself.
        check_finite(g, *flag_);
        ao.skip_if = flag_.get();
      }
      accumulate(acc_, g, ao);
      if (mode_ == AccumMode::F16DynamicScale) {
        // The host knows the outcome from the conversion: no device read per micro-batch.
        const optim::LossScaling& d = o_.dynamic_scaling;
        if (r.nonfinite) {
          counted = false;
          ++dropped_;
          ++backoffs_;
          flag_->clear();
          clean_ = 0;
          set_scale(scale_ * d.backoff_factor);
        } else if (++clean_ >= d.growth_interval) {
          clean_ = 0;
          ++growths_;
          set_scale(scale_ * d.growth_factor);
        }
      }
    }
    if (counted) {
      ++counted_;
      for (std::int64_t j = 0; j < n_; ++j)
        ref_[j] += static_cast<double>(x[j]);
    }
  }

  CellResult read(std::int64_t k) const {
    CellResult c;
    c.mode = mode_;
    c.source = pool_.source();
    c.accum = k;
    c.dropped = dropped_;
    c.backoffs = backoffs_;
    c.growths = growths_;
    c.loss_scale = scale_;
    c.min_loss_scale = min_scale_;
    c.max_loss_scale = max_scale_;
    c.underflow_frac =
        nonzero_ > 0 ? static_cast<double>(underflowed_) / static_cast<double>(nonzero_) : 0.0;
    std::vector<float> acc;
    if (mode_ == AccumMode::F32Exact) {
      Tensor rounded = Tensor::empty({n_}, DType::f32, o_.device);
      exact_.round_to(rounded);  // the sums, rounded once
      acc = rounded.to_vector();
    } else {
      acc = acc_.to_vector();
    }
    std::vector<float> comp;
    if (is_kahan(mode_)) comp = comp_.to_vector();
    const double count = static_cast<double>(counted_ * pool_.elements_per_micro_batch());
    const float inv = counted_ > 0 ? static_cast<float>(1.0 / count) : 0.0f;
    std::vector<float> norm(static_cast<std::size_t>(n_));
    std::vector<double> ref(static_cast<std::size_t>(n_));
    double err2 = 0.0, ref2 = 0.0, max_abs = 0.0, max_rel = 0.0;
    std::int64_t nonfinite = 0;
    for (std::int64_t j = 0; j < n_; ++j) {
      const float sum = comp.empty() ? acc[j] : acc[j] + comp[j];
      const float v = sum * inv;
      const double r = counted_ > 0 ? ref_[j] / count : 0.0;
      norm[j] = v;
      ref[j] = r;
      if (!std::isfinite(v)) {
        ++nonfinite;
        continue;
      }
      const double e = std::fabs(static_cast<double>(v) - r);
      err2 += e * e;
      ref2 += r * r;
      max_abs = std::max(max_abs, e);
      if (r != 0.0) max_rel = std::max(max_rel, e / std::fabs(r));
    }
    const double inf = std::numeric_limits<double>::infinity();
    c.overflow_frac = static_cast<double>(nonfinite) / static_cast<double>(n_);
    if (counted_ == 0) {
      c.rel_error = c.max_abs_error = c.max_rel_error = std::numeric_limits<double>::quiet_NaN();
    } else if (nonfinite > 0) {
      c.rel_error = c.max_abs_error = c.max_rel_error = inf;
    } else {
      c.rel_error = ref2 > 0.0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
      c.max_abs_error = max_abs;
      c.max_rel_error = max_rel;
    }
    if (o_.keep_values) {
      c.acc = acc;
      c.comp = comp;
      c.normalised = std::move(norm);
      c.reference = std::move(ref);
    }
    return c;
  }

 private:
  struct RowInfo {
    bool done = false;
    bool nonfinite = false;
    std::int64_t nonzero = 0;
    std::int64_t underflowed = 0;
  };

  // The row's f16 gradient at the current scale: half(f32(x * S)), cached until S changes.
  const RowInfo& convert(std::int64_t row) {
    RowInfo& r = rows_[static_cast<std::size_t>(row)];
    if (r.done) return r;
    const float s = is_scaled(mode_) ? scale_ : 1.0f;
    const float* src = pool_.addend(row);  // row < rows(): micro-batch `row` uses it
    std::uint16_t* dst = &bits_[static_cast<std::size_t>(row * n_)];
    r = RowInfo{};
    for (std::int64_t j = 0; j < n_; ++j) {
      const std::uint16_t h = float_to_half_bits(src[j] * s);
      dst[j] = h;
      if (src[j] != 0.0f) {
        ++r.nonzero;
        if ((h & 0x7FFFu) == 0u) ++r.underflowed;
      }
      if ((h & 0x7C00u) == 0x7C00u) r.nonfinite = true;
    }
    r.done = true;
    return r;
  }

  void set_scale(float s) {
    scale_ = s;
    min_scale_ = std::min(min_scale_, s);
    max_scale_ = std::max(max_scale_, s);
    scale_host_.data<float>()[0] = static_cast<float>(1.0 / static_cast<double>(s));
    inv_scale_.copy_from(scale_host_);
    for (RowInfo& r : rows_)
      r.done = false;
  }

  AccumMode mode_;
  const GradientPool& pool_;
  const StudyOptions& o_;
  std::int64_t n_;
  Tensor acc_, comp_, g_host_, g_dev_, scale_host_, inv_scale_;
  ExactSum exact_;  // F32Exact
  std::unique_ptr<NonFiniteFlag> flag_;
  std::vector<double> ref_;
  std::vector<std::uint16_t> bits_;
  std::vector<RowInfo> rows_;
  float scale_ = 1.0f;
  float min_scale_ = 1.0f, max_scale_ = 1.0f;
  std::int64_t counted_ = 0, dropped_ = 0, backoffs_ = 0, growths_ = 0;
  std::uint64_t clean_ = 0;
  std::int64_t nonzero_ = 0, underflowed_ = 0;
};

}  // namespace

const std::vector<AccumMode>& all_accum_modes() {
  static const std::vector<AccumMode> modes = [] {
    std::vector<AccumMode> v;
    for (const ModeInfo& m : kModes)
      v.push_back(m.mode);
    return v;
  }();
  return modes;
}

const char* accum_mode_name(AccumMode mode) {
  return info(mode).name;
}

bool accum_mode_from_name(const std::string& name, AccumMode* mode) {
  for (const ModeInfo& m : kModes) {
    if (name == m.name) {
      *mode = m.mode;
      return true;
    }
  }
  return false;
}

DType accum_mode_grad_dtype(AccumMode mode) {
  return info(mode).grad;
}
DType accum_mode_acc_dtype(AccumMode mode) {
  return info(mode).acc;
}

const std::vector<GradientSource>& all_gradient_sources() {
  static const std::vector<GradientSource> sources = [] {
    std::vector<GradientSource> v;
    for (const SourceInfo& s : kSources)
      if (s.source != GradientSource::Provided) v.push_back(s.source);
    return v;
  }();
  return sources;
}

const char* gradient_source_name(GradientSource source) {
  return info(source).name;
}

bool gradient_source_from_name(const std::string& name, GradientSource* source) {
  for (const SourceInfo& s : kSources) {
    if (name == s.name) {
      *source = s.source;
      return true;
    }
  }
  return false;
}

const char* gradient_source_description(GradientSource source) {
  return info(source).description;
}

GradientPool::GradientPool(GradientSource source, const StudyOptions& o) : source_(source) {
  GA_CHECK(o.pool_rows >= 2, "GradientPool: pool_rows must be at least 2, got " << o.pool_rows);
  GA_CHECK(o.synthetic_entries >= 1,
           "GradientPool: synthetic_entries must be positive, got " << o.synthetic_entries);
  GA_CHECK(o.mlp_in >= 1 && o.mlp_hidden >= 1 && o.mlp_out >= 1 && o.mlp_micro_batch >= 1,
           "GradientPool: MLP sizes must be positive, got " << o.mlp_in << "-" << o.mlp_hidden
                                                            << "-" << o.mlp_out << ", micro-batch "
                                                            << o.mlp_micro_batch);
  info(source);  // validates the enum
  GA_CHECK(source != GradientSource::Provided,
           "GradientPool: a provided source takes its values (the other constructor)");
  if (source == GradientSource::Mlp) {
    rows_ = o.pool_rows;
    elements_ = o.mlp_micro_batch * o.mlp_out;
    build_mlp_pool(o, rows_, values_, entries_);
    return;
  }
  entries_ = o.synthetic_entries;
  rows_ = source == GradientSource::Constant ? 1 : o.pool_rows;
  values_.resize(static_cast<std::size_t>(rows_ * entries_));
  CounterRng rng(source_seed(o.seed, source));
  for (std::int64_t r = 0; r < rows_; ++r) {
    for (std::int64_t j = 0; j < entries_; ++j) {
      float& v = values_[static_cast<std::size_t>(r * entries_ + j)];
      const float u = rng.uniform();  // [0, 1)
      switch (source) {
        case GradientSource::RandomSign:
          v = -1.0f + 2.0f * u;
          break;
        case GradientSource::Constant:
          v = o.constant_addend;
          break;
        case GradientSource::StagnationF32:
          v = r == 0 ? 1.0f : (0.5f + 0.5f * u) * 0x1.0p-24f;
          break;
        case GradientSource::StagnationF16:
          v = r == 0 ? 1.0f : (0.5f + 0.5f * u) * 0x1.0p-11f;
          break;
        case GradientSource::NearF16Min:
          v = static_cast<float>(std::exp2(-26.0 + 16.0 * static_cast<double>(u)));
          break;
        case GradientSource::NearF16Max:
          v = (0.5f + 0.5f * u) * 65504.0f;
          break;
        case GradientSource::Mlp:
        case GradientSource::Provided:
          break;
      }
    }
  }
  cycled_from_ =
      (source == GradientSource::StagnationF32 || source == GradientSource::StagnationF16) ? 1 : 0;
}

GradientPool::GradientPool(std::vector<float> values, std::int64_t rows, std::int64_t entries,
                           std::int64_t elements_per_micro_batch)
    : source_(GradientSource::Provided),
      rows_(rows),
      entries_(entries),
      elements_(elements_per_micro_batch),
      values_(std::move(values)) {
  GA_CHECK(rows >= 2 && entries >= 1 && elements_per_micro_batch >= 1,
           "GradientPool: expected at least 2 rows, 1 entry and 1 element per micro-batch, got "
               << rows << ", " << entries << ", " << elements_per_micro_batch);
  GA_CHECK(static_cast<std::int64_t>(values_.size()) == rows * entries,
           "GradientPool: " << values_.size() << " values for " << rows << " x " << entries);
}

std::int64_t GradientPool::row_of(std::int64_t i) const {
  if (i < rows_) return i;
  return cycled_from_ + (i - cycled_from_) % (rows_ - cycled_from_);
}

CellResult run_cell(AccumMode mode, const GradientPool& pool, std::int64_t k,
                    const StudyOptions& options) {
  return run_sweep(mode, pool, {k}, options).front();
}

std::vector<CellResult> run_sweep(AccumMode mode, const GradientPool& pool,
                                  const std::vector<std::int64_t>& counts,
                                  const StudyOptions& options, const StudyProgress& progress) {
  GA_CHECK(!counts.empty(), "run_sweep: no accumulation counts");
  for (std::size_t i = 0; i < counts.size(); ++i) {
    GA_CHECK(counts[i] >= 1, "run_sweep: accumulation counts must be positive, got " << counts[i]);
    GA_CHECK(i == 0 || counts[i] > counts[i - 1],
             "run_sweep: accumulation counts must be ascending, got " << counts[i - 1] << " then "
                                                                      << counts[i]);
  }
  Runner runner(mode, pool, options);
  std::vector<CellResult> out;
  out.reserve(counts.size());
  std::int64_t done = 0;
  for (std::int64_t k : counts) {
    for (; done < k; ++done) {
      runner.add(done);
      if (progress && (done + 1) % 8192 == 0) progress(done + 1);
    }
    out.push_back(runner.read(k));
  }
  if (progress) progress(done);
  return out;
}

std::vector<std::int64_t> doubling_counts(std::int64_t max) {
  GA_CHECK(max >= 1, "doubling_counts: max must be positive, got " << max);
  std::vector<std::int64_t> v;
  for (std::int64_t k = 1; k <= max; k *= 2) {
    v.push_back(k);
    if (k > max / 2) break;
  }
  if (v.back() != max) v.push_back(max);
  return v;
}

}  // namespace gradaccum::study
