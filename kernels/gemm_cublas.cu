// The linear layer's GEMMs through cuBLAS (GemmBackend::Vendor on CUDA): the comparison path.
// fp32: cublasSgemm in CUBLAS_DEFAULT_MATH (no TF32); f16 operands: cublasGemmEx with
// CUBLAS_COMPUTE_32F (fp32 accumulation). The product goes straight into C (beta = 1 to
// accumulate) unless an epilogue needs it bare: then into an f32 temporary and one small
// elementwise kernel applies bias / ReLU / mask / accumulate / Kahan. Row sums (db): a small
// kernel, one sequential chain per output row. Not bit-exact with the hand-written kernels.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>
#include <type_traits>
#include <vector>

#include "core/cuda_check.cuh"
#include "core/launch.cuh"
#include "core/storage.h"
#include "kernels/gemm.cuh"
#include "kernels/gemm_epilogue.cuh"

namespace gradaccum::cuda {
namespace {

constexpr int kThreads = 256;

// One cuBLAS handle per host thread: a handle's stream (cublasSetStream) and its workspace are
// its state, so two threads sharing one would race on it (the cuBLAS guide advises against
// sharing). A thread takes a handle from the pool on its first product and gives it back when it
// exits, so threads that come and go reuse handles instead of creating one each. Handles are
// never destroyed (destroying them at exit would race the CUDA runtime's own teardown), and the
// pool is never freed for the same reason.
class HandlePool {
 public:
  static HandlePool& instance() {
    static HandlePool* pool = new HandlePool();
    return *pool;
  }
  cublasStatus_t acquire(cublasHandle_t* handle) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        *handle = free_.back();
        free_.pop_back();
        return CUBLAS_STATUS_SUCCESS;
      }
    }
    cublasStatus_t status = cublasCreate(handle);
    if (status == CUBLAS_STATUS_SUCCESS) {
      status = cublasSetMathMode(*handle, CUBLAS_DEFAULT_MATH);  // no TF32
      if (status != CUBLAS_STATUS_SUCCESS) release(*handle);
    }
    return status;
  }
  void release(cublasHandle_t handle) noexcept {
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      free_.push_back(handle);
    } catch (...) {
      // Out of memory for one pointer: the handle is leaked, which is harmless.
    }
  }

 private:
  std::mutex mutex_;
  std::vector<cublasHandle_t> free_;
};

// This thread's handle (or why it has none), taken on first use.
struct ThreadHandle {
  ThreadHandle() { status = HandlePool::instance().acquire(&handle); }
  ~ThreadHandle() {
    if (status == CUBLAS_STATUS_SUCCESS) HandlePool::instance().release(handle);
  }
  ThreadHandle(const ThreadHandle&) = delete;
  ThreadHandle& operator=(const ThreadHandle&) = delete;
  cublasHandle_t handle = nullptr;
  cublasStatus_t status = CUBLAS_STATUS_NOT_INITIALIZED;
};

const ThreadHandle& thread_handle() {
  thread_local ThreadHandle h;
  return h;
}

cublasHandle_t cublas_handle() {
  const ThreadHandle& h = thread_handle();
  GA_CHECK(h.status == CUBLAS_STATUS_SUCCESS,
           "GemmBackend::Vendor on CUDA needs cuBLAS, and creating its handle failed with "
               << ::gradaccum::detail::cublas_status_name(h.status)
               << (h.status == CUBLAS_STATUS_NOT_SUPPORTED
                       ? " (the emulated device has no cuBLAS: use GemmBackend::Auto or "
                         "Handwritten)"
                       : ""));
  return h.handle;
}

// C = epilogue(prod) elementwise, prod the bare product (f32). Accumulating without Kahan adds
// the stored C first.
template <typename TIn, typename TC>
__global__ void cublas_epilogue_kernel(const float* prod, detail::Epilogue<TIn, TC> ep, int M,
                                       int N) {
  const std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<std::size_t>(M) * N) return;
  const int m = static_cast<int>(i / N), n = static_cast<int>(i % N);
  float v = prod[i];
  if (ep.accumulate && ep.comp == nullptr) v = __fadd_rn(ep.init(m, n), v);
  ep(m, n, v);
}

// Row sums of A, one thread and one sequential chain per row m.
template <typename TIn>
__global__ void cublas_row_sum_kernel(const TIn* a, bool a_kmajor, int M, int K,
                                      detail::RowSum rs) {
  const int m = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (m >= M) return;
  float s = rs.init(m);
  for (int k = 0; k < K; ++k) {
    const std::size_t idx =
        a_kmajor ? static_cast<std::size_t>(k) * M + m : static_cast<std::size_t>(m) * K + k;
    s = __fadd_rn(s, detail::to_f32(a[idx]));
  }
  rs.finish(m, s);
}

unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

template <typename TIn, typename TC>
void run(const GemmProblem& p) {
  const int M = static_cast<int>(p.M), N = static_cast<int>(p.N), K = static_cast<int>(p.K);
  if (N > 0) {
    cublasHandle_t h = cublas_handle();
    // The thread's handle follows the thread's current stream.
    GA_CUBLAS_CHECK(cublasSetStream(h, current_stream()));
    const bool direct = p.mask == nullptr && p.comp == nullptr && p.bias == nullptr && !p.relu;
    Storage tmp;
    void* c = p.c;
    if (!direct) {
      tmp = Storage(static_cast<std::size_t>(p.M * p.N) * sizeof(float), Device::CUDA);
      c = tmp.data();
    }
    const float alpha = 1.0f;
    const float beta = direct && p.accumulate ? 1.0f : 0.0f;
    // Row-major C[M, N] = A·B is column-major Cᵀ[N, M] = Bᵀ·Aᵀ: cuBLAS sees B first.
    const cublasOperation_t op_b = p.b_kmajor ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t op_a = p.a_kmajor ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int ldb = std::max(1, p.b_kmajor ? N : K);
    const int lda = std::max(1, p.a_kmajor ? M : K);
    if constexpr (std::is_same<TIn, float>::value) {
      GA_CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, N, M, K, &alpha, static_cast<const float*>(p.b),
                                  ldb, static_cast<const float*>(p.a), lda, &beta,
                                  static_cast<float*>(c), N));
    } else {
      const cudaDataType c_type = direct && p.c_half ? CUDA_R_16F : CUDA_R_32F;
      GA_CUBLAS_CHECK(cublasGemmEx(h, op_b, op_a, N, M, K, &alpha, p.b, CUDA_R_16F, ldb, p.a,
                                   CUDA_R_16F, lda, &beta, c, c_type, N, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
    }
    if (!direct) {
      GA_LAUNCH((cublas_epilogue_kernel<TIn, TC>), dim3(blocks_for(p.M * p.N)), dim3(kThreads), 0,
                ::gradaccum::current_stream(), static_cast<const float*>(c),
                detail::make_epilogue<TIn, TC>(p), M, N);
    }
  }
  if (p.row_sum != nullptr) {
    GA_LAUNCH((cublas_row_sum_kernel<TIn>), dim3(blocks_for(p.M)), dim3(kThreads), 0,
              ::gradaccum::current_stream(), static_cast<const TIn*>(p.a), p.a_kmajor, M, K,
              detail::make_row_sum(p));
  }
}

}  // namespace

bool cublas_available() {
  return thread_handle().status == CUBLAS_STATUS_SUCCESS;
}

void gemm_cublas(const GemmProblem& p) {
  if (p.M == 0) return;
  if (!p.half) {
    run<float, float>(p);
  } else if (p.c_half) {
    run<__half, __half>(p);
  } else {
    run<__half, float>(p);
  }
}

}  // namespace gradaccum::cuda
