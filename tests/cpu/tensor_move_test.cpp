// A moved-from tensor is undefined, like a default-constructed one (not a "defined" tensor with
// no storage, whose data() would be a null pointer).
#include <gtest/gtest.h>

#include <utility>

#include "core/tensor.h"

namespace gradaccum {
namespace {

TEST(TensorMove, MovedFromTensorIsUndefined) {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3});
  Tensor b = std::move(a);
  EXPECT_FALSE(a.defined());  // NOLINT(bugprone-use-after-move): the state under test
  EXPECT_EQ(a.nbytes(), 0u);
  EXPECT_THROW(a.to_vector(), Error);
  EXPECT_THROW(a.data<float>(), Error);
  EXPECT_TRUE(b.defined());
  EXPECT_EQ(b.to_vector(), (std::vector<float>{1, 2, 3}));

  Tensor c = Tensor::zeros({2, 2});
  c = std::move(b);
  EXPECT_FALSE(b.defined());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.shape(), Shape({3}));
  EXPECT_EQ(c.to_vector(), (std::vector<float>{1, 2, 3}));
  Tensor& self = c;
  c = std::move(self);
  EXPECT_TRUE(c.defined());
  EXPECT_EQ(c.to_vector(), (std::vector<float>{1, 2, 3}));
}

TEST(TensorMove, ReshapeLeavesTheSourceUndefined) {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor r = std::move(a).reshape({3, 2});
  EXPECT_FALSE(a.defined());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(r.shape(), Shape({3, 2}));
  EXPECT_THROW(Tensor().reshape(Shape()), Error);
}

}  // namespace
}  // namespace gradaccum
