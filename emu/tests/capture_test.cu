// Stream capture and graphs on the emulated device (emu/capture.cpp): recording and replaying
// gives the results of direct launches, a replay reads device memory as it is at replay time, and
// each rule of the CUDA runtime that a real GPU enforces during a capture gives its error.
#include <gtest/gtest.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/launch.cuh"
#include "emu_test_util.h"

namespace gradaccum {
namespace {

using emu_test::DeviceBuffer;
using emu_test::error_of;
using ::testing::HasSubstr;

// y = 2 y + x
__global__ void axpy_kernel(const float* x, float* y, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = 2.0f * y[i] + x[i];
}

// out += *scale (the scalar is read when the kernel runs)
__global__ void add_scalar_kernel(float* out, const float* scale, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] += *scale;
}

constexpr int kN = 100;

// The work recorded or run: set y to 0 in part, two launches, a device copy.
void enqueue(cudaStream_t s, const float* x, float* y, float* z) {
  ASSERT_EQ(cudaMemsetAsync(y, 0, 10 * sizeof(float), s), cudaSuccess);
  GA_LAUNCH(axpy_kernel, dim3(1), dim3(128), 0, s, x, y, kN);
  GA_LAUNCH(axpy_kernel, dim3(2), dim3(64), 0, s, x, y, kN);
  ASSERT_EQ(cudaMemcpyAsync(z, y, kN * sizeof(float), cudaMemcpyDeviceToDevice, s), cudaSuccess);
}

std::vector<float> inputs(float base) {
  std::vector<float> v(kN);
  for (int i = 0; i < kN; ++i)
    v[i] = base + 0.25f * static_cast<float>(i);
  return v;
}

class Capture : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess); }
  void TearDown() override {
    EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
    (void)cudaGetLastError();
  }
  // Begins a capture, runs `body`, ends it: the error EndCapture gave.
  cudaError_t capture(cudaStreamCaptureMode mode, const std::function<void()>& body) {
    EXPECT_EQ(cudaStreamBeginCapture(stream_, mode), cudaSuccess);
    body();
    cudaGraph_t graph = nullptr;
    const cudaError_t err = cudaStreamEndCapture(stream_, &graph);
    if (graph != nullptr) {
      EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
    }
    if (err != cudaSuccess) {
      EXPECT_EQ(graph, nullptr);
    }
    (void)cudaGetLastError();
    return err;
  }
  cudaStreamCaptureStatus status() {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    EXPECT_EQ(cudaStreamIsCapturing(stream_, &st), cudaSuccess);
    return st;
  }
  cudaStream_t stream_ = nullptr;
};

TEST_F(Capture, RecordedThenReplayedGivesWhatDirectLaunchesGive) {
  DeviceBuffer<float> x(inputs(1.0f)), y(inputs(-3.0f)), z(kN);
  DeviceBuffer<float> x2(inputs(1.0f)), y2(inputs(-3.0f)), z2(kN);
  enqueue(stream_, x2.get(), y2.get(), z2.get());  // direct, twice
  enqueue(stream_, x2.get(), y2.get(), z2.get());

  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(status(), cudaStreamCaptureStatusActive);
  enqueue(stream_, x.get(), y.get(), z.get());
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  ASSERT_NE(graph, nullptr);
  EXPECT_EQ(status(), cudaStreamCaptureStatusNone);
  EXPECT_EQ(y.read(), inputs(-3.0f)) << "a capture records the work, it does not run it";
  EXPECT_EQ(z.read(), std::vector<float>(kN, 0.0f));

  std::size_t nodes = 0;
  ASSERT_EQ(cudaGraphGetNodes(graph, nullptr, &nodes), cudaSuccess);
  EXPECT_EQ(nodes, 4u);
  std::vector<cudaGraphNode_t> handles(6, nullptr);
  std::size_t room = handles.size();
  ASSERT_EQ(cudaGraphGetNodes(graph, handles.data(), &room), cudaSuccess);
  EXPECT_EQ(room, 4u);
  EXPECT_NE(handles[3], nullptr);
  EXPECT_EQ(handles[4], nullptr);

  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphDestroy(graph), cudaSuccess);  // the exec keeps what it needs
  ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_EQ(y.read(), y2.read());
  EXPECT_EQ(z.read(), z2.read());
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
}

TEST_F(Capture, AReplayReadsTheDeviceScalarAsItIsAtReplayTime) {
  DeviceBuffer<float> out(std::vector<float>(kN, 0.0f)), scale(std::vector<float>{1.0f});
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  GA_LAUNCH(add_scalar_kernel, dim3(1), dim3(128), 0, stream_, out.get(),
            static_cast<const float*>(scale.get()), kN);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  float expected = 0.0f;
  for (float s : {1.0f, 0.5f, 8.0f}) {
    ASSERT_EQ(cudaMemcpy(scale.get(), &s, sizeof s, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
    expected += s;
    EXPECT_EQ(out.read(), std::vector<float>(kN, expected)) << "scale " << s;
  }
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
}

TEST_F(Capture, TheLegacyStreamCannotCapture) {
  EXPECT_EQ(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal),
            cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaGetLastError(), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamBeginCapture(cudaStreamLegacy, cudaStreamCaptureModeRelaxed),
            cudaErrorStreamCaptureUnsupported);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(stream_, &graph), cudaErrorIllegalState) << "nothing to end";
  (void)cudaGetLastError();
}

TEST_F(Capture, UnsafeCallsFailAndInvalidateTheCapture) {
  DeviceBuffer<float> buf(kN);
  float host[4] = {};
  const std::vector<std::pair<std::string, std::function<cudaError_t()>>> calls = {
      {"cudaMalloc",
       [] {
         void* p = nullptr;
         const cudaError_t err = cudaMalloc(&p, 64);
         EXPECT_EQ(p, nullptr);
         return err;
       }},
      {"cudaFree", [&] { return cudaFree(buf.get()); }},
      {"cudaMemcpy D2H", [&] { return cudaMemcpy(host, buf.get(), 16, cudaMemcpyDeviceToHost); }},
      {"cudaMemcpy H2D", [&] { return cudaMemcpy(buf.get(), host, 16, cudaMemcpyHostToDevice); }},
      {"cudaMemset", [&] { return cudaMemset(buf.get(), 0, 16); }},
      {"cudaDeviceSynchronize", [] { return cudaDeviceSynchronize(); }},
      {"cudaStreamSynchronize", [&] { return cudaStreamSynchronize(stream_); }},
  };
  for (cudaStreamCaptureMode mode :
       {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal}) {
    for (const auto& [name, call] : calls) {
      const cudaError_t err = capture(mode, [&] {
        EXPECT_EQ(call(), cudaErrorStreamCaptureUnsupported) << name;
        EXPECT_EQ(status(), cudaStreamCaptureStatusInvalidated) << name;
        // Later work on the stream is refused too.
        EXPECT_EQ(cudaMemsetAsync(buf.get(), 0, 16, stream_), cudaErrorStreamCaptureInvalidated)
            << name;
      });
      EXPECT_EQ(err, cudaErrorStreamCaptureInvalidated) << name << ", mode " << mode;
    }
  }
  // The buffer was neither freed nor touched, and everything works again.
  EXPECT_EQ(buf.read(), std::vector<float>(kN, 0.0f));
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 64), cudaSuccess);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
}

TEST_F(Capture, RelaxedModeAllowsAllocation) {
  const cudaError_t err = capture(cudaStreamCaptureModeRelaxed, [] {
    void* p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, 64), cudaSuccess);
    EXPECT_EQ(cudaFree(p), cudaSuccess);
  });
  EXPECT_EQ(err, cudaSuccess);
}

TEST_F(Capture, LegacyStreamWorkDuringACaptureIsImplicitAndInvalidates) {
  DeviceBuffer<float> x(inputs(1.0f)), y(kN);
  const cudaError_t launch_err = capture(cudaStreamCaptureModeGlobal, [&] {
    const std::string msg = error_of([&] {
      GA_LAUNCH(axpy_kernel, dim3(1), dim3(128), 0, cudaStream_t{},
                static_cast<const float*>(x.get()), y.get(), kN);
    });
    EXPECT_THAT(msg, HasSubstr("axpy_kernel"));
    EXPECT_THAT(msg, HasSubstr("cudaErrorStreamCaptureImplicit"));
    EXPECT_EQ(status(), cudaStreamCaptureStatusInvalidated);
  });
  EXPECT_EQ(launch_err, cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(y.read(), std::vector<float>(kN, 0.0f)) << "the refused launch did not run";

  const cudaError_t memset_err = capture(cudaStreamCaptureModeGlobal, [&] {
    EXPECT_EQ(cudaMemsetAsync(y.get(), 0, 16, nullptr), cudaErrorStreamCaptureImplicit);
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    EXPECT_EQ(cudaStreamIsCapturing(nullptr, &st), cudaSuccess) << "invalidated: no longer active";
  });
  EXPECT_EQ(memset_err, cudaErrorStreamCaptureInvalidated);

  const cudaError_t query_err = capture(cudaStreamCaptureModeGlobal, [&] {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    EXPECT_EQ(cudaStreamIsCapturing(nullptr, &st), cudaErrorStreamCaptureImplicit);
  });
  EXPECT_EQ(query_err, cudaSuccess) << "asking is refused, but does not invalidate";
}

TEST_F(Capture, ANonBlockingStreamLeavesTheLegacyStreamFree) {
  cudaStream_t nb = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking), cudaSuccess);
  DeviceBuffer<float> y(kN);
  ASSERT_EQ(cudaStreamBeginCapture(nb, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaMemsetAsync(y.get(), 0, 16, nullptr), cudaSuccess);
  cudaGraph_t graph = nullptr;
  EXPECT_EQ(cudaStreamEndCapture(nb, &graph), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(nb), cudaSuccess);
}

TEST_F(Capture, BeginTwiceAndBadHandles) {
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaSuccess);
  EXPECT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeGlobal), cudaErrorIllegalState);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_EQ(cudaGraphLaunch(nullptr, stream_), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGraphExecDestroy(nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGraphDestroy(nullptr), cudaErrorInvalidValue);
  (void)cudaGetLastError();
}

}  // namespace
}  // namespace gradaccum
