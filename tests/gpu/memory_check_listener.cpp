// Device memory returns to its starting level after every GPU test: a GoogleTest listener,
// registered from a static initializer (gtest_main is linked), records cuda_bytes_in_use() when
// each test starts and fails the test when it ends with a different count. The count is
// gradaccum's own (core/cuda_device.h: every cuda_allocate / cuda_release), exact, so the check
// is equality; nothing in the library holds device memory for the process's lifetime through
// it (the cuBLAS handle allocates through cuBLAS, not cuda_allocate, and is not counted).
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "core/cuda_device.h"
#include "core/tensor.h"
#include "test_util.h"

namespace gradaccum::test {
namespace {

// Text of the failure for a test that started with `before` bytes and ended with `after`; empty
// when they match.
std::string leak_message(std::size_t before, std::size_t after) {
  if (before == after) return "";
  const bool leaked = after > before;
  const std::size_t diff = leaked ? after - before : before - after;
  return "device memory " + std::string(leaked ? "leaked" : "over-released") + ": " +
         std::to_string(diff) + " bytes (cuda_bytes_in_use() " + std::to_string(before) +
         " at the start of the test, " + std::to_string(after) + " at its end)";
}

class DeviceMemoryCheck : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo&) override { before_ = cuda_bytes_in_use(); }
  // Listeners' OnTestEnd runs in reverse order of registration, so this one runs before the
  // default printer: the failure shows in the test's own output and result.
  void OnTestEnd(const ::testing::TestInfo&) override {
    const std::string msg = leak_message(before_, cuda_bytes_in_use());
    if (!msg.empty()) ADD_FAILURE() << msg;
  }

 private:
  std::size_t before_ = 0;
};

// Registered once, before main() runs the tests.
const bool g_registered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new DeviceMemoryCheck);
  return true;
}();

TEST(DeviceMemoryCheck, IsRegistered) {
  EXPECT_TRUE(g_registered);
}

TEST(DeviceMemoryCheck, ReportsALeakAndAnOverRelease) {
  EXPECT_EQ(leak_message(64, 64), "");
  EXPECT_NE(leak_message(0, 256).find("leaked: 256 bytes"), std::string::npos);
  EXPECT_NE(leak_message(512, 0).find("over-released: 512 bytes"), std::string::npos);
}

// The listener itself, driven by hand: a device tensor alive at OnTestEnd fails the test (the
// failure captured here), and the same listener passes once the tensor is freed.
TEST(DeviceMemoryCheck, FailsATestThatEndsHoldingDeviceMemory) {
  GA_REQUIRE_CUDA();
  const ::testing::TestInfo& info = *::testing::UnitTest::GetInstance()->current_test_info();
  DeviceMemoryCheck check;
  check.OnTestStart(info);
  Tensor held = Tensor::zeros({256}, DType::f32, Device::CUDA);
  EXPECT_NONFATAL_FAILURE(check.OnTestEnd(info), "leaked: 1024 bytes");
  held = Tensor();
  check.OnTestEnd(info);  // back at the start level: no failure
}

}  // namespace
}  // namespace gradaccum::test
