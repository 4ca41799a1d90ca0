// The CUDA stream that gradaccum's device work goes to, per host thread. By default it is the
// legacy default stream (0), so code that never sets one keeps its old ordering; a StreamGuard
// directs every kernel launch, zero-fill and device-to-device copy of the library to another
// stream for its scope (optim::MicroStepGraph captures a micro-step that way: capture is not
// possible on the legacy stream). Plain C++: usable in every build, CUDA or not.
#pragma once

// cudaStream_t is `CUstream_st*`; the forward declaration keeps CUDA headers out of here.
struct CUstream_st;

namespace gradaccum {

using Stream = CUstream_st*;  // nullptr: the legacy default stream

// This thread's current stream.
Stream current_stream() noexcept;

// Sets the current stream for its scope and restores the previous one.
class StreamGuard {
 public:
  explicit StreamGuard(Stream stream) noexcept;
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream previous_;
};

}  // namespace gradaccum
