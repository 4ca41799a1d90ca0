#include "data/fashion_mnist.h"

#include <cstdlib>

#include "core/error.h"
#include "data/idx.h"

namespace gradaccum::data {
namespace {

std::string dims_of(const IdxArray& a) {
  return idx_dims_text(a.dims) + " " + idx_type_name(a.type);
}

}  // namespace

const char* split_name(Split s) {
  return s == Split::Train ? "train" : "test";
}

std::string fashion_mnist_dir() {
  const char* env = std::getenv("GRADACCUM_FASHION_MNIST_DIR");
  return env != nullptr && *env != '\0' ? env : "/usr/share/datasets/fashion-mnist";
}

FashionMnist load_fashion_mnist(const std::string& dir, Split split) {
  const std::string prefix = dir + "/" + (split == Split::Train ? "train" : "t10k");
  const std::string images_path = prefix + "-images-idx3-ubyte.gz";
  const std::string labels_path = prefix + "-labels-idx1-ubyte.gz";
  const IdxArray images = load_idx(images_path);
  GA_CHECK(images.type == IdxType::U8 && images.dims.size() == 3 &&
               images.dims[1] == kFashionMnistSide && images.dims[2] == kFashionMnistSide,
           "IDX file '" << images_path << "': expected images, u8 [N, 28, 28]; got "
                        << dims_of(images) << (images.dims.size() == 1 ? " (a labels file?)" : ""));
  const IdxArray labels = load_idx(labels_path);
  GA_CHECK(labels.type == IdxType::U8 && labels.dims.size() == 1,
           "IDX file '" << labels_path << "': expected labels, u8 [N]; got " << dims_of(labels)
                        << (labels.dims.size() == 3 ? " (an images file?)" : ""));
  const std::int64_t n = images.dims[0];
  GA_CHECK(n > 0, "IDX file '" << images_path << "': expected at least one image, got none");
  GA_CHECK(labels.dims[0] == n, "Fashion-MNIST " << split_name(split) << " split: " << n
                                                 << " images but " << labels.dims[0]
                                                 << " labels; expected one label per image");
  FashionMnist out;
  out.labels = labels.bytes;
  for (std::size_t i = 0; i < out.labels.size(); ++i) {
    GA_CHECK(out.labels[i] < kFashionMnistClasses,
             "IDX file '" << labels_path << "': label " << int{out.labels[i]} << " at " << i
                          << "; expected a class in [0, " << kFashionMnistClasses << ")");
  }
  std::vector<float> pixels(images.bytes.size());
  for (std::size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = static_cast<float>(images.bytes[i]) / 255.0f;
  out.images = Tensor::from_vector(pixels, {n, kFashionMnistPixels});
  return out;
}

}  // namespace gradaccum::data
