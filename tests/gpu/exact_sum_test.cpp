// ExactSum on the device: the same limbs and the same rounded sums as the CPU, bit for bit
// (integer arithmetic, one thread per element), on fresh random addends over the whole f32
// range with non-finite ones, a scale, f16 addends, a skipped call, and a grid-stride size.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/exact_sum.h"
#include "test_util.h"

namespace gradaccum::test {
namespace {

std::vector<float> random_addends(std::int64_t n, std::mt19937& rng) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) {
    std::uint32_t b = static_cast<std::uint32_t>(rng());
    if (rng() % 16 != 0) b = (b & 0x807fffffu) | ((100 + rng() % 56) << 23);  // mostly near 1
    std::memcpy(&x, &b, sizeof x);  // the rest anywhere, inf and NaN included
  }
  return v;
}

void check_device_equals_cpu(std::int64_t n, int rounds) {
  std::mt19937 rng(static_cast<unsigned>(n));
  ExactSum cpu({n}, Device::CPU), dev({n}, Device::CUDA);
  NonFiniteFlag cpu_flag(Device::CPU), dev_flag(Device::CUDA);
  Tensor cpu_scale = Tensor::full({1}, 0.75f),
         dev_scale = Tensor::full({1}, 0.75f, DType::f32, Device::CUDA);
  for (int r = 0; r < rounds; ++r) {
    const std::vector<float> v = random_addends(n, rng);
    const DType dt = r % 3 == 2 ? DType::f16 : DType::f32;
    const bool scaled = r % 2 == 1;
    const Tensor g = Tensor::from_vector(v, {n}, dt);
    cpu.add(g, {scaled ? &cpu_scale : nullptr, &cpu_flag});
    dev.add(g.to(Device::CUDA), {scaled ? &dev_scale : nullptr, &dev_flag});
  }
  NonFiniteFlag skip(Device::CUDA);
  skip.set(true);
  dev.add(Tensor::full({n}, 1.0f, DType::f32, Device::CUDA), {nullptr, nullptr, &skip});
  EXPECT_EQ(cpu_flag.raised(), dev_flag.raised());
  EXPECT_TRUE(dev_flag.raised()) << "the addends include non-finite values";
  const Tensor dev_limbs_host = [&] {
    Tensor t = Tensor::empty({n * ExactSum::kLimbs * 2});  // as raw bytes: 2 floats per limb
    detail::cuda_copy(t.raw_data(), dev.limbs().data(), dev.limbs().bytes(),
                      detail::CopyKind::DeviceToHost);
    return t;
  }();
  EXPECT_EQ(std::memcmp(dev_limbs_host.raw_data(), cpu.limbs().data(), cpu.limbs().bytes()), 0);
  Tensor cpu_out = poisoned({n}), dev_out = poisoned({n}, DType::f32, Device::CUDA);
  cpu.round_to(cpu_out);
  dev.round_to(dev_out);
  const Tensor back = dev_out.to(Device::CPU);
  EXPECT_EQ(std::memcmp(back.raw_data(), cpu_out.raw_data(), cpu_out.nbytes()), 0);
}

TEST(ExactSumCuda, SameBitsAsTheCpu) {
  GA_REQUIRE_CUDA();
  check_device_equals_cpu(1000, 12);
}

TEST(ExactSumCuda, GridStrideCoversLargeTensors) {
  GA_REQUIRE_CUDA();
  check_device_equals_cpu((std::int64_t{1} << 19) + 2048 * 3 + 7, 2);  // past one grid
}

TEST(ExactSumCuda, WrongDeviceIsAnError) {
  GA_REQUIRE_CUDA();
  ExactSum dev({4}, Device::CUDA);
  EXPECT_THROW(dev.add(Tensor::zeros({4})), Error);
  Tensor cpu_out = Tensor::zeros({4});
  EXPECT_THROW(dev.round_to(cpu_out), Error);
}

}  // namespace
}  // namespace gradaccum::test
