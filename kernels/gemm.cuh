// CUDA launchers of the linear layer's GEMMs (kernels/gemm_problem.h describes the problem).
// Plain C++ declarations: linear.cpp includes this under GRADACCUM_WITH_CUDA. All pointers are
// device pointers; work is queued on the default stream.
#pragma once

#include "kernels/gemm_problem.h"

namespace gradaccum::cuda {

// fp32 operands: the hand-written kernel, bit-identical to cpu::gemm_handwritten.
void gemm_f32(const GemmProblem& p);
// f16 operands, fp32 accumulation on tensor cores (mma.m16n8k16), f16 or f32 C.
void gemm_f16(const GemmProblem& p);
// cuBLAS (cublasSgemm without TF32; cublasGemmEx with fp32 compute for f16) plus small epilogue
// kernels. Throws a clear error when cuBLAS is not usable (e.g. on the emulated device).
void gemm_cublas(const GemmProblem& p);
// Whether a cuBLAS handle can be created here (false on the emulated device).
bool cublas_available();

}  // namespace gradaccum::cuda
