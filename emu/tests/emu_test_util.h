// Helpers for the emulator's tests: device buffers and error capture.
#pragma once

#include <cuda_runtime.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

// Sanitizer builds: ThreadSanitizer reports the planted races itself, and timings mean nothing.
#if defined(__SANITIZE_THREAD__)
#define GA_EMU_TEST_TSAN 1
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define GA_EMU_TEST_SANITIZED 1
#endif
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GA_EMU_TEST_TSAN 1
#define GA_EMU_TEST_SANITIZED 1
#endif
#if __has_feature(address_sanitizer)
#define GA_EMU_TEST_SANITIZED 1
#endif
#endif

namespace gradaccum::emu_test {

// A device buffer filled from / read back into a std::vector.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&ptr_), n * sizeof(T)), cudaSuccess);
    EXPECT_EQ(cudaMemset(ptr_, 0, n * sizeof(T)), cudaSuccess);
  }
  explicit DeviceBuffer(const std::vector<T>& values) : DeviceBuffer(values.size()) {
    EXPECT_EQ(cudaMemcpy(ptr_, values.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { (void)cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  std::vector<T> read() const {
    std::vector<T> out(n_);
    EXPECT_EQ(cudaMemcpy(out.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }

 private:
  T* ptr_ = nullptr;
  std::size_t n_;
};

// The message of the gradaccum::Error that `body` throws ("" when it throws none).
inline std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace gradaccum::emu_test
