// The linear layer's GEMMs on the host: a blocked, fixed-order hand-written path (bit-identical
// to the CUDA fp32 kernel) and the BLAS library's sgemm (OpenBLAS; fast, not bit-exact).
// The problem and the chain every element follows: kernels/gemm_problem.h.
#pragma once

#include "kernels/gemm_problem.h"

namespace gradaccum::cpu {

// The fixed-order path: blocked and vectorised across output columns (AVX2+FMA when the CPU has
// it, std::fma otherwise: the same bits), two threads over output tiles, never over k.
void gemm_handwritten(const GemmProblem& p);

// cblas_sgemm (f16 operands converted to f32 first); epilogues as separate loops.
// Throws when gradaccum was built without a BLAS library.
void gemm_blas(const GemmProblem& p);
bool have_blas();

}  // namespace gradaccum::cpu
