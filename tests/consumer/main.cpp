// Uses the installed package: makes a tensor, saves and loads it as .npy, prints OK.
#include <cstdio>
#include <string>
#include <vector>

#include "gradaccum.h"

int main(int argc, char** argv) {
  using namespace gradaccum;
  const std::string path = argc > 1 ? argv[1] : "consumer.npy";
  try {
#if defined(GA_EXPECT_CUDA)
    const bool want_cuda = true;
#else
    const bool want_cuda = false;
#endif
    if (built_with_cuda() != want_cuda) {
      std::printf("FAIL: built_with_cuda() is %d, expected %d\n", built_with_cuda(), want_cuda);
      return 1;
    }
    std::printf("CUDA devices: %d\n", cuda_device_count());  // 0 without a GPU: not an error

    const std::vector<float> values = {1.0f, -2.5f, 3.25f, 0.0f, 65504.0f, 0.125f};
    Tensor t = Tensor::from_vector(values, {2, 3});
    save_npy(path, t);
    Tensor back = load_npy(path);
    if (back.shape() != Shape({2, 3}) || back.to_vector() != values) {
      std::printf("FAIL: %s read back differently: %s\n", path.c_str(), back.str().c_str());
      return 1;
    }
    Tensor h = uniform({4, 4}, -1.0f, 1.0f, 7, DType::f16);
    save_npy(path, h);
    if (load_npy(path).to_vector() != h.to_vector()) {
      std::printf("FAIL: f16 round trip through %s\n", path.c_str());
      return 1;
    }
  } catch (const Error& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  std::printf("OK\n");
  return 0;
}
