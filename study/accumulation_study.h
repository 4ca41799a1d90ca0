// The accumulation stability study: how far can gradients be accumulated, numerically, in each
// accumulation mode? One "cell" accumulates the first k micro-batch gradients of a gradient
// source in one mode, through the library's kernels (kernels/accumulate.h) on the chosen device,
// normalises the sum as the optimizer step does, and compares it with a float64 reference over
// exactly the same addends.
//
//   study::StudyOptions o;                                    // device, seed, scales, ...
//   study::GradientPool pool(study::GradientSource::Mlp, o);  // builds the addends once
//   for (study::AccumMode m : study::all_accum_modes()) {
//     std::vector<study::CellResult> r = study::run_sweep(m, pool, study::doubling_counts(65536),
//     o);
//   }
//
// Addends. A GradientPool holds `rows()` f32 micro-batch gradients of `entries()` values each;
// micro-batch i uses row i while i < rows() and then cycles (rows cycled_from() .. rows() - 1),
// so a run of any length (1,000,000 additions) costs bounded memory. Every pool is built on the
// CPU (the MLP's gradients with the engine's CPU kernels), so every device adds the same bits.
// The float64 reference is the sum of those f32 addends, in float64, over the micro-batches the
// mode actually counted (dynamic loss scaling drops micro-batches that overflow: the reference
// leaves them out too, as the step divides by the samples it counted).
//
// fp16 gradients. An fp16 mode's addend is the f32 gradient times the loss scale S (1 without
// scaling; S is a power of two, so the product is exact) rounded to half on the host (round to
// nearest even, bit-exact with the device's __float2half_rn): what an fp16 backward with loss
// scale S stores. The conversion's precision loss, underflow and overflow are part of the mode's
// error; the accumulation then runs on the device.
//
// Normalisation, as SGD's update does it: g = f32(f32(acc + comp) * f32(1 / count)) with
// count = the counted micro-batches' loss elements (samples x outputs; 1 per synthetic addend).
//
// Everything is deterministic in (source, options.seed, mode, k): the same on the CPU, the
// emulated device and a GPU, bit for bit (see tests/gpu/stability_test.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "optim/accumulation_window.h"

namespace gradaccum::study {

// How micro-batch gradients are accumulated.
enum class AccumMode : std::uint8_t {
  F32Naive,         // f32 gradients, acc_f32 += g_f32
  F32Kahan,         // f32 gradients, Kahan-compensated f32 accumulator
  F16InF16,         // f16 gradients, f16 accumulator (fp16 arithmetic): the bad idea
  F16InF32,         // f16 gradients, acc_f32 += g_f16
  F16InF32Kahan,    // f16 gradients, Kahan-compensated f32 accumulator
  F16StaticScale,   // f16 gradients of a loss scaled by a fixed S, unscaled while added to f32
  F16DynamicScale,  // as above with a dynamic S: an overflowing micro-batch is dropped (not
                    // added, not counted) and S backs off; S grows after clean micro-batches
  F32Exact,         // f32 gradients, an exact fixed-point sum (kernels/exact_sum.h) rounded
                    // once to f32 when read
};

const std::vector<AccumMode>& all_accum_modes();
// Short names for tables and CSV: naive, kahan, f16-acc, f32-acc, f32-acc-kahan, static-scale,
// dynamic-scale, exact. accum_mode_from_name returns false for an unknown name.
const char* accum_mode_name(AccumMode mode);
bool accum_mode_from_name(const std::string& name, AccumMode* mode);
// The dtype of the gradients (addends) and of the accumulator.
DType accum_mode_grad_dtype(AccumMode mode);
DType accum_mode_acc_dtype(AccumMode mode);

// Where the addends come from.
enum class GradientSource : std::uint8_t {
  Mlp,            // realistic: parameter gradients of a small MLP (L1 loss, summed over each
                  // micro-batch as an accumulation window does), one micro-batch per row
  RandomSign,     // i.i.d. uniform(-1, 1): random-sign rounding errors
  Constant,       // every addend = options.constant_addend: the exact stagnation point
  StagnationF32,  // 1, then values in [0.5, 1) * 2^-24: each below half an f32 ulp of 1
  StagnationF16,  // 1, then values in [0.5, 1) * 2^-11: each below half an f16 ulp of 1
  NearF16Min,     // log-uniform in [2^-26, 2^-10], around fp16's smallest normal 2^-14 = 6.1e-5
  NearF16Max,     // uniform in [0.5, 1) * 65504, up to fp16's largest finite number
  Provided,       // the caller's (gradaccum-study: a real model's micro-batch gradients)
};

// Every source but Provided.
const std::vector<GradientSource>& all_gradient_sources();
// mlp, random-sign, constant, stagnation-f32, stagnation-f16, near-f16-min, near-f16-max.
const char* gradient_source_name(GradientSource source);
bool gradient_source_from_name(const std::string& name, GradientSource* source);
const char* gradient_source_description(GradientSource source);

struct StudyOptions {
  Device device = Device::CPU;  // where the accumulation kernels run
  std::uint64_t seed = 0;       // data, initialisation and synthetic values
  // Distinct micro-batch gradients per pool (longer runs cycle through them).
  std::int64_t pool_rows = 65536;
  // The MLP source: Linear(in, hidden) -> ReLU -> Linear(hidden, out), fitted to a teacher
  // network of the same shape on uniform(-1, 1) inputs; micro_batch samples per micro-batch.
  std::int64_t mlp_in = 8, mlp_hidden = 8, mlp_out = 4, mlp_micro_batch = 2;
  // Values per synthetic micro-batch gradient.
  std::int64_t synthetic_entries = 64;
  float constant_addend = 0x1.0p-6f;
  // F16StaticScale's S, and F16DynamicScale's rule (PyTorch GradScaler's defaults, applied per
  // micro-batch: back off on an overflowing micro-batch, grow after growth_interval clean ones).
  float static_scale = 1024.0f;
  optim::LossScaling dynamic_scaling = optim::LossScaling::dynamic();
  // Keep the raw accumulator values and the normalised result in each CellResult.
  bool keep_values = false;
};

// The f32 addends of one gradient source.
class GradientPool {
 public:
  // Builds the pool (the MLP source runs options.pool_rows backward passes on the CPU).
  GradientPool(GradientSource source, const StudyOptions& options);
  // GradientSource::Provided: `values` holds rows x entries addends (rows >= 2), each a
  // micro-batch's gradient summed over its elements_per_micro_batch loss elements.
  GradientPool(std::vector<float> values, std::int64_t rows, std::int64_t entries,
               std::int64_t elements_per_micro_batch);

  GradientSource source() const { return source_; }
  std::int64_t rows() const { return rows_; }
  std::int64_t entries() const { return entries_; }
  std::int64_t cycled_from() const { return cycled_from_; }
  // Loss elements per micro-batch: the normalisation count (samples x outputs for the MLP).
  std::int64_t elements_per_micro_batch() const { return elements_; }
  // Row used by micro-batch i (i >= 0).
  std::int64_t row_of(std::int64_t i) const;
  // Micro-batch i's gradient: entries() values.
  const float* addend(std::int64_t i) const { return &values_[row_of(i) * entries_]; }

 private:
  GradientSource source_;
  std::int64_t rows_ = 0;
  std::int64_t entries_ = 0;
  std::int64_t cycled_from_ = 0;
  std::int64_t elements_ = 1;
  std::vector<float> values_;  // rows_ x entries_
};

// The metrics of one (mode, source, k) cell.
struct CellResult {
  AccumMode mode = AccumMode::F32Naive;
  GradientSource source = GradientSource::Mlp;
  std::int64_t accum = 0;  // k: micro-batches submitted
  // ||g - ref|| / ||ref|| (2-norms) of the normalised gradient; +inf when any value is
  // non-finite; NaN (like both errors below) when every micro-batch was dropped.
  double rel_error = 0.0;
  double max_abs_error = 0.0;  // worst element: max |g_i - ref_i| (+inf when non-finite)
  double max_rel_error = 0.0;  // worst element relative to itself, over ref_i != 0
  // Of the non-zero addend values converted to the gradient dtype (all k micro-batches), the
  // fraction flushed to zero (f16 underflow; 0 for f32 gradients).
  double underflow_frac = 0.0;
  // Of the accumulated entries, the fraction that ended non-finite (an overflowing addend or
  // accumulator).
  double overflow_frac = 0.0;
  std::int64_t dropped = 0;  // micro-batches dropped by dynamic loss scaling
  std::int64_t backoffs = 0, growths = 0;
  float loss_scale = 1.0f;  // S after the last micro-batch (1 without scaling)
  float min_loss_scale = 1.0f, max_loss_scale = 1.0f;
  // With StudyOptions::keep_values: the accumulator and compensation (f16 widened exactly; comp
  // empty without Kahan; for exact, the sums rounded to f32), the normalised gradient and the
  // float64 reference.
  std::vector<float> acc, comp, normalised;
  std::vector<double> reference;
};

// Called during a sweep with the number of micro-batches done so far.
using StudyProgress = std::function<void(std::int64_t done)>;

// One cell: the first k micro-batches of `pool` accumulated in `mode` on options.device.
CellResult run_cell(AccumMode mode, const GradientPool& pool, std::int64_t k,
                    const StudyOptions& options);
// Cells for every k in `counts` (ascending) from one accumulation, read as it passes each k:
// element j equals run_cell(mode, pool, counts[j], options). progress (optional) is called
// every few thousand micro-batches.
std::vector<CellResult> run_sweep(AccumMode mode, const GradientPool& pool,
                                  const std::vector<std::int64_t>& counts,
                                  const StudyOptions& options, const StudyProgress& progress = {});

// 1, 2, 4, ..., up to max (max itself included when it is not a power of two).
std::vector<std::int64_t> doubling_counts(std::int64_t max);

}  // namespace gradaccum::study
