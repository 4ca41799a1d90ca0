// The accumulation study on the CUDA device (real or emulated) gives the CPU's numbers bit for
// bit: the accumulate kernels' fp32, fp16 (round to nearest even after every operation), Kahan
// and unscaling arithmetic, and the dynamic loss scaler's drops decided on the device.
#include "study/accumulation_study.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "test_util.h"

namespace gradaccum {
namespace {

using study::AccumMode;
using study::CellResult;
using study::GradientPool;
using study::GradientSource;
using study::StudyOptions;

std::vector<std::uint32_t> bits(const std::vector<float>& v) {
  std::vector<std::uint32_t> out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

bool same(double a, double b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

TEST(StabilityGpu, CpuAndDeviceAgreeBitForBit) {
  GA_REQUIRE_CUDA();
  StudyOptions o;
  o.keep_values = true;
  o.pool_rows = 24;                       // k = 40 cycles through the pool
  o.synthetic_entries = 67;               // vectorised packs of 8 and a tail
  o.dynamic_scaling.growth_interval = 5;  // backoffs and growths within a few micro-batches
  const std::vector<std::int64_t> ks = {1, 3, 16, 40};
  for (GradientSource s : study::all_gradient_sources()) {
    const GradientPool pool(s, o);
    for (AccumMode m : study::all_accum_modes()) {
      StudyOptions on_cpu = o, on_gpu = o;
      on_cpu.device = Device::CPU;
      on_gpu.device = Device::CUDA;
      const std::vector<CellResult> c = study::run_sweep(m, pool, ks, on_cpu);
      const std::vector<CellResult> g = study::run_sweep(m, pool, ks, on_gpu);
      for (std::size_t i = 0; i < ks.size(); ++i) {
        SCOPED_TRACE(std::string(study::gradient_source_name(s)) + " " + study::accum_mode_name(m) +
                     " k = " + std::to_string(ks[i]));
        EXPECT_EQ(bits(c[i].acc), bits(g[i].acc));
        EXPECT_EQ(bits(c[i].comp), bits(g[i].comp));
        EXPECT_EQ(bits(c[i].normalised), bits(g[i].normalised));
        EXPECT_TRUE(same(c[i].rel_error, g[i].rel_error));
        EXPECT_EQ(c[i].overflow_frac, g[i].overflow_frac);
        EXPECT_EQ(c[i].underflow_frac, g[i].underflow_frac);
        EXPECT_EQ(c[i].dropped, g[i].dropped);
        EXPECT_EQ(c[i].loss_scale, g[i].loss_scale);
      }
    }
  }
}

TEST(StabilityGpu, DeviceDropsOverflowingMicroBatches) {
  // Near fp16's largest number: the first micro-batches overflow at S = 2^16 and are dropped on
  // the device (check_finite + skip_if); the sum stays finite.
  GA_REQUIRE_CUDA();
  StudyOptions o;
  o.device = Device::CUDA;
  o.pool_rows = 64;
  const GradientPool pool(GradientSource::NearF16Max, o);
  const CellResult r = study::run_cell(AccumMode::F16DynamicScale, pool, 32, o);
  EXPECT_EQ(r.dropped, 16);
  EXPECT_EQ(r.loss_scale, 1.0f);
  EXPECT_EQ(r.overflow_frac, 0.0);
  EXPECT_LT(r.rel_error, 1e-3);
}

}  // namespace
}  // namespace gradaccum
