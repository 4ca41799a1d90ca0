#include "core/tensor.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace gradaccum {
namespace {

TEST(Tensor, FromVectorRoundTripsF32) {
  const std::vector<float> v = test::random_values(6, 1);
  Tensor t = Tensor::from_vector(v, {2, 3});
  EXPECT_EQ(t.shape(), Shape({2, 3}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  EXPECT_EQ(t.to_vector(), v);
}

TEST(Tensor, ZeroSizeIsAllowed) {
  Tensor t = Tensor::zeros({0, 5});
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.to_vector().empty());
  Tensor c = t.clone();
  EXPECT_EQ(c.shape(), Shape({0, 5}));
}

TEST(Tensor, ShapeMismatchIsAnError) {
  EXPECT_THROW(Tensor::from_vector({1.0f, 2.0f}, {3}), Error);
  Tensor a = Tensor::zeros({2});
  Tensor b = Tensor::zeros({3});
  EXPECT_THROW(a.copy_from(b), Error);
  EXPECT_THROW(Shape({1, 2, 3, 4, 5}), Error);
  EXPECT_THROW(Shape({-1}), Error);
}

TEST(Tensor, HugeShapeIsRejectedNotWrapped) {
  const std::int64_t big = std::int64_t{1} << 40;
  EXPECT_THROW(Shape({big, big}), Error);
  EXPECT_THROW(Tensor::empty({std::int64_t{1} << 62}), Error);
}

TEST(Tensor, RowsCopiesARange) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor r = t.rows(1, 3);
  EXPECT_EQ(r.shape(), Shape({2, 2}));
  EXPECT_EQ(r.to_vector(), (std::vector<float>{3, 4, 5, 6}));
  EXPECT_THROW(t.rows(2, 4), Error);
}

TEST(Tensor, CudaTensorWithoutDeviceIsAClearError) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  try {
    Tensor::zeros({4}, DType::f32, Device::CUDA);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gradaccum
