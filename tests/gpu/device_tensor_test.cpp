#include <gtest/gtest.h>

#include "core/cuda_device.h"
#include "core/tensor.h"
#include "test_util.h"

namespace gradaccum {
namespace {

TEST(DeviceTensor, RoundTripsThroughTheDevice) {
  GA_REQUIRE_CUDA();
  const std::size_t before = cuda_bytes_in_use();
  {
    for (DType dtype : {DType::f32, DType::f16}) {
      Tensor host = test::random_tensor({3, 5}, 7, dtype);
      Tensor dev = host.to(Device::CUDA);
      EXPECT_TRUE(dev.is_cuda());
      Tensor dev2 = dev.clone();  // device to device
      Tensor back = dev2.to(Device::CPU);
      EXPECT_EQ(back.to_vector(), host.to_vector());
    }
  }
  EXPECT_EQ(cuda_bytes_in_use(), before) << "device memory leaked";
}

TEST(DeviceTensor, ZerosAndZeroSize) {
  GA_REQUIRE_CUDA();
  Tensor z = Tensor::zeros({4, 4}, DType::f32, Device::CUDA);
  EXPECT_EQ(z.to_vector(), std::vector<float>(16, 0.0f));
  Tensor e = Tensor::zeros({0}, DType::f16, Device::CUDA);
  EXPECT_TRUE(e.to_vector().empty());
}

TEST(DeviceTensor, OutOfMemoryIsAnExceptionNamingTheBytes) {
  GA_REQUIRE_CUDA();
  const std::int64_t huge = std::int64_t{1} << 50;  // 4 PiB of f32
  try {
    Tensor::empty({huge}, DType::f32, Device::CUDA);
    FAIL() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    EXPECT_EQ(e.bytes(), static_cast<std::size_t>(huge) * 4);
    EXPECT_NE(std::string(e.what()).find(std::to_string(e.bytes())), std::string::npos);
  }
  // The device still works afterwards.
  Tensor ok = Tensor::full({2}, 3.0f, DType::f32, Device::CUDA);
  EXPECT_EQ(ok.to_vector(), (std::vector<float>{3.0f, 3.0f}));
}

}  // namespace
}  // namespace gradaccum
