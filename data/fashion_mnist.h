// Fashion-MNIST (Zalando's 28x28 grey images of clothes, 10 classes; 60,000 to train and
// 10,000 to test), read from the IDX files of Debian's package dataset-fashion-mnist.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gradaccum::data {

constexpr std::int64_t kFashionMnistSide = 28;
constexpr std::int64_t kFashionMnistPixels = kFashionMnistSide * kFashionMnistSide;
constexpr int kFashionMnistClasses = 10;

enum class Split { Train, Test };
const char* split_name(Split s);

struct FashionMnist {
  Tensor images;                     // f32 [N, 784] on the CPU, pixels scaled to [0, 1]
  std::vector<std::uint8_t> labels;  // N classes in [0, 10)
};

// $GRADACCUM_FASHION_MNIST_DIR, or where Debian's package puts the files.
std::string fashion_mnist_dir();
// Loads one split from `dir` ({train,t10k}-{images-idx3,labels-idx1}-ubyte.gz). Throws an Error
// naming the file and what was expected when a file is missing, malformed, not the images or
// labels it should be, or when the two do not match.
FashionMnist load_fashion_mnist(const std::string& dir, Split split);

}  // namespace gradaccum::data
