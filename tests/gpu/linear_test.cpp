// The linear layer on the CUDA device (real or emulated): the hand-written fp32 and fp16
// tensor-core kernels against float64, the fp32 kernel bit for bit against the CPU's
// hand-written path, split invariance, and the cuBLAS path where cuBLAS exists.
// Sizes stay moderate: on the emulated device every GPU thread is a fiber.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cuda_device.h"
#include "core/cuda_graph.h"
#include "core/stream.h"
#include "kernels/linear.h"
#include "linear_test_util.h"
#include "test_util.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/gemm.cuh"
#endif

namespace gradaccum {
namespace {

using test::same_bits;

const GemmConfig kHandwritten{GemmBackend::Handwritten, false};
const GemmConfig kVendor{GemmBackend::Vendor, false};

#define GA_REQUIRE_CUBLAS()                                                            \
  do {                                                                                 \
    GA_REQUIRE_CUDA();                                                                 \
    if (!cublas_ok()) GTEST_SKIP() << "cuBLAS is not available (cublasCreate failed)"; \
  } while (0)

bool cublas_ok() {
#if GRADACCUM_WITH_CUDA
  return cuda::cublas_available();
#else
  return false;
#endif
}

// Odd shapes, every pair of values of two dimensions at least once (all rows x in, the out
// value rotating): 16 of 48 and 12 of 24 cases of the full products, every pair still covered.
template <std::size_t R, std::size_t I, std::size_t O>
void check_odd_shapes(const std::int64_t (&rows)[R], const std::int64_t (&ins)[I],
                      const std::int64_t (&outs)[O], DType dtype, std::uint64_t seed) {
  for (std::size_t r = 0; r < R; ++r) {
    for (std::size_t i = 0; i < I; ++i) {
      test::check_linear_layer(rows[r], ins[i], outs[(r + i) % O], dtype, Device::CUDA,
                               kHandwritten, true, seed += 10);
    }
  }
}

TEST(GpuLinear, Fp32OddShapes) {
  GA_REQUIRE_CUDA();
  check_odd_shapes({1, 3, 17, 100}, {1, 17, 64, 129}, {3, 64, 129}, DType::f32, 300);
}

TEST(GpuLinear, Fp32LargerShapes) {
  GA_REQUIRE_CUDA();
  test::check_linear_layer(256, 256, 256, DType::f32, Device::CUDA, kHandwritten, true, 1);
  test::check_linear_layer(300, 33, 130, DType::f32, Device::CUDA, kHandwritten, true, 2);
}

TEST(GpuLinear, Fp16TensorCoresOddShapes) {
  GA_REQUIRE_CUDA();
  check_odd_shapes({1, 17, 100}, {1, 17, 64, 129}, {3, 129}, DType::f16, 700);
}

TEST(GpuLinear, Fp16TensorCoresLargerShapes) {
  GA_REQUIRE_CUDA();
  test::check_linear_layer(256, 256, 128, DType::f16, Device::CUDA, kHandwritten, true, 3);
  test::check_linear_layer(200, 40, 136, DType::f16, Device::CUDA, kHandwritten, true, 4);
}

// Every output of the three products (with all epilogues) from the CUDA fp32 kernel equals the
// CPU hand-written path's bit for bit.
void expect_cuda_equals_cpu(std::int64_t rows, std::int64_t in, std::int64_t out,
                            std::uint64_t seed) {
  SCOPED_TRACE(test::shape_name(rows, in, out, DType::f32));
  const Tensor x = test::random_tensor({rows, in}, seed);
  const Tensor w = test::random_tensor({out, in}, seed + 1);
  const Tensor b = test::random_tensor({out}, seed + 2);
  const Tensor dy = test::random_tensor({rows, out}, seed + 3);
  const Tensor dx_old = test::random_tensor({rows, in}, seed + 4);
  const Tensor dw_old = test::random_tensor({out, in}, seed + 5);
  const Tensor db_old = test::random_tensor({out}, seed + 6);
  const Tensor comp_w =
      test::random_tensor({out, in}, seed + 7, DType::f32, Device::CPU, -1e-6f, 1e-6f);
  const Tensor comp_b =
      test::random_tensor({out}, seed + 8, DType::f32, Device::CPU, -1e-6f, 1e-6f);
  struct Outputs {
    std::vector<float> y, y_relu, dx, dx_mask_acc, dw, db, dw_acc, db_acc, kw, kwc, kb, kbc;
  };
  auto run = [&](Device d) {
    const Tensor xd = x.to(d), wd = w.to(d), bd = b.to(d), dyd = dy.to(d);
    Outputs o;
    Tensor y = test::poisoned({rows, out}, DType::f32, d);
    linear_forward(xd, wd, nullptr, y, false, kHandwritten);
    o.y = y.to_vector();
    linear_forward(xd, wd, &bd, y, true, kHandwritten);
    o.y_relu = y.to_vector();
    Tensor dx = test::poisoned({rows, in}, DType::f32, d);
    linear_backward_input(dyd, wd, dx, GradientMode::Overwrite, nullptr, kHandwritten);
    o.dx = dx.to_vector();
    Tensor dxa = dx_old.to(d);
    linear_backward_input(dyd, wd, dxa, GradientMode::Accumulate, &xd, kHandwritten);
    o.dx_mask_acc = dxa.to_vector();
    Tensor dw = test::poisoned({out, in}, DType::f32, d);
    Tensor db = test::poisoned({out}, DType::f32, d);
    linear_backward_params(dyd, xd, dw, &db, GradientMode::Overwrite, nullptr, kHandwritten);
    o.dw = dw.to_vector();
    o.db = db.to_vector();
    Tensor dwa = dw_old.to(d), dba = db_old.to(d);
    linear_backward_params(dyd, xd, dwa, &dba, GradientMode::Accumulate, nullptr, kHandwritten);
    o.dw_acc = dwa.to_vector();
    o.db_acc = dba.to_vector();
    Tensor kw = dw_old.to(d), kb = db_old.to(d), kwc = comp_w.to(d), kbc = comp_b.to(d);
    KahanState ks{&kwc, &kbc};
    linear_backward_params(dyd, xd, kw, &kb, GradientMode::Accumulate, &ks, kHandwritten);
    o.kw = kw.to_vector();
    o.kwc = kwc.to_vector();
    o.kb = kb.to_vector();
    o.kbc = kbc.to_vector();
    return o;
  };
  const Outputs c = run(Device::CPU), g = run(Device::CUDA);
  EXPECT_TRUE(same_bits(c.y, g.y)) << "forward";
  EXPECT_TRUE(same_bits(c.y_relu, g.y_relu)) << "forward+bias+relu";
  EXPECT_TRUE(same_bits(c.dx, g.dx)) << "dx";
  EXPECT_TRUE(same_bits(c.dx_mask_acc, g.dx_mask_acc)) << "dx accumulate+mask";
  EXPECT_TRUE(same_bits(c.dw, g.dw)) << "dw";
  EXPECT_TRUE(same_bits(c.db, g.db)) << "db";
  EXPECT_TRUE(same_bits(c.dw_acc, g.dw_acc)) << "dw accumulate";
  EXPECT_TRUE(same_bits(c.db_acc, g.db_acc)) << "db accumulate";
  EXPECT_TRUE(same_bits(c.kw, g.kw) && same_bits(c.kwc, g.kwc)) << "Kahan dw";
  EXPECT_TRUE(same_bits(c.kb, g.kb) && same_bits(c.kbc, g.kbc)) << "Kahan db";
}

TEST(GpuLinearDeterminism, Fp32KernelEqualsCpuHandwrittenBitForBit) {
  GA_REQUIRE_CUDA();
  expect_cuda_equals_cpu(1, 1, 1, 10);
  expect_cuda_equals_cpu(3, 17, 5, 20);
  expect_cuda_equals_cpu(17, 129, 64, 30);
  expect_cuda_equals_cpu(100, 3, 129, 40);
  expect_cuda_equals_cpu(257, 131, 130, 50);
}

TEST(GpuLinearDeterminism, Fp32SplitOverRowsIsBitIdentical) {
  GA_REQUIRE_CUDA();
  for (std::int64_t a : {0, 1, 7, 50, 99, 100}) {
    test::check_split_invariance(100, 33, 19, a, DType::f32, Device::CUDA, kHandwritten, 900 + a);
  }
  test::check_split_invariance(300, 129, 65, 133, DType::f32, Device::CUDA, kHandwritten, 42);
}

TEST(GpuLinearDeterminism, Fp16SplitAtMultiplesOf16IsBitIdentical) {
  GA_REQUIRE_CUDA();
  for (std::int64_t a : {0, 16, 48, 96}) {
    test::check_split_invariance(100, 33, 19, a, DType::f16, Device::CUDA, kHandwritten, 500 + a);
  }
}

TEST(GpuLinear, KahanKeepsContributionsBelowHalfAnUlp) {
  GA_REQUIRE_CUDA();
  test::check_kahan_keeps_small_contributions(Device::CUDA, kHandwritten);
}

TEST(GpuLinear, ZeroRows) {
  GA_REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::f16}) {
    const Tensor x = Tensor::empty({0, 5}, dtype, Device::CUDA);
    const Tensor w = test::random_tensor({4, 5}, 1, dtype, Device::CUDA);
    const Tensor dy = Tensor::empty({0, 4}, dtype, Device::CUDA);
    Tensor y = Tensor::empty({0, 4}, dtype, Device::CUDA);
    linear_forward(x, w, nullptr, y, false, kHandwritten);
    Tensor dw = test::poisoned({4, 5}, DType::f32, Device::CUDA);
    Tensor db = test::poisoned({4}, DType::f32, Device::CUDA);
    linear_backward_params(dy, x, dw, &db, GradientMode::Overwrite, nullptr, kHandwritten);
    EXPECT_EQ(dw.to_vector(), std::vector<float>(20, 0.0f));
    EXPECT_EQ(db.to_vector(), std::vector<float>(4, 0.0f));
    const Tensor dw_old = test::random_tensor({4, 5}, 3, DType::f32, Device::CUDA);
    Tensor dwa = dw_old.clone();
    linear_backward_params(dy, x, dwa, nullptr, GradientMode::Accumulate, nullptr, kHandwritten);
    EXPECT_TRUE(same_bits(dwa.to_vector(), dw_old.to_vector()));
  }
}

TEST(GpuLinear, DeviceMismatchThrowsNamingTheDevices) {
  GA_REQUIRE_CUDA();
  const Tensor x = test::random_tensor({4, 5}, 1, DType::f32, Device::CUDA);
  const Tensor w = test::random_tensor({3, 5}, 2);  // on the CPU
  Tensor y = test::poisoned({4, 3}, DType::f32, Device::CUDA);
  try {
    linear_forward(x, w, nullptr, y);
    ADD_FAILURE() << "expected gradaccum::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("one device"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cuda"), std::string::npos) << msg;
  }
}

TEST(GpuLinear, VendorBackendIsCublas) {
  GA_REQUIRE_CUBLAS();
  std::uint64_t seed = 9000;
  for (DType dtype : {DType::f32, DType::f16}) {
    for (std::int64_t rows : {1, 17, 100}) {
      for (std::int64_t in : {3, 64, 129}) {
        test::check_linear_layer(rows, in, 65, dtype, Device::CUDA, kVendor, false, seed += 10);
      }
    }
    test::check_linear_layer(256, 256, 256, dtype, Device::CUDA, kVendor, false, seed += 10);
  }
  test::check_kahan_keeps_small_contributions(Device::CUDA, kVendor);
}

// Threads that each run cuBLAS products on their own stream at once (each thread has its own
// handle): every result equals the one a lone thread computed, and threads that come later reuse
// the handles of those that ended.
TEST(GpuLinear, VendorBackendFromSeveralThreadsAtOnce) {
  GA_REQUIRE_CUBLAS();
  constexpr int kThreads = 4;
  auto inputs = [](int t) {
    const std::int64_t rows = 64 + 16 * t, in = 96 + 8 * t, out = 80;
    return std::make_pair(test::random_tensor({rows, in}, 100 + static_cast<std::uint64_t>(t),
                                              DType::f32, Device::CUDA),
                          test::random_tensor({out, in}, 200 + static_cast<std::uint64_t>(t),
                                              DType::f32, Device::CUDA));
  };
  auto product = [&](int t) {
    const auto [x, w] = inputs(t);
    Tensor y = test::poisoned({x.size(0), w.size(0)}, DType::f32, Device::CUDA);
    linear_forward(x, w, nullptr, y, false, kVendor);
    return y.to_vector();
  };
  std::vector<std::vector<float>> alone;
  for (int t = 0; t < kThreads; ++t)
    alone.push_back(product(t));
  for (int wave = 0; wave < 2; ++wave) {
    std::vector<std::vector<float>> got(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        try {
          const Stream stream = detail::cuda_stream_create();
          {
            StreamGuard on(stream);
            for (int i = 0; i < 10; ++i)
              got[static_cast<std::size_t>(t)] = product(t);
            detail::cuda_stream_synchronize(stream);
          }
          detail::cuda_stream_destroy(stream);
        } catch (const std::exception& e) {
          errors[static_cast<std::size_t>(t)] = e.what();
        }
      });
    }
    for (std::thread& th : threads)
      th.join();
    for (int t = 0; t < kThreads; ++t) {
      const auto k = static_cast<std::size_t>(t);
      ASSERT_EQ(errors[k], "") << "thread " << t;
      const std::vector<double> want(alone[k].begin(), alone[k].end());
      EXPECT_LE(test::max_rel_error(got[k], want, 1e-3), 1e-5)
          << "thread " << t << ", wave " << wave;
    }
  }
}

TEST(GpuLinear, VendorBackendWithoutCublasIsAClearError) {
  GA_REQUIRE_CUDA();
  if (cublas_ok()) GTEST_SKIP() << "cuBLAS is available here";
  const Tensor x = test::random_tensor({4, 5}, 1, DType::f32, Device::CUDA);
  const Tensor w = test::random_tensor({3, 5}, 2, DType::f32, Device::CUDA);
  Tensor y = test::poisoned({4, 3}, DType::f32, Device::CUDA);
  try {
    linear_forward(x, w, nullptr, y, false, kVendor);
    ADD_FAILURE() << "expected gradaccum::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuBLAS"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gradaccum
