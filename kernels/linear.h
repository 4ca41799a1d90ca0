// Linear layer products, PyTorch layout: weight W[out, in], Y = X·Wᵀ + b.
// Every function validates its arguments (shapes, dtypes, one device for all) and dispatches
// to the CPU or CUDA implementation by the tensors' device.
//
// Dtypes: x, w, b, y, dy, dx share the model dtype (f32 or f16, fp32 accumulation always);
// dw, db and their Kahan compensation buffers are always f32.
// Reductions over samples (the rows of x and dy in dw and db) are one sequential chain per
// output element in sample order, starting from the stored accumulator: never split over
// threads or blocks by a rule that depends on the number of rows.
//
// Backends (GemmConfig): Auto is the hand-written kernels on CUDA and the BLAS library
// (OpenBLAS) on the CPU; Vendor is cuBLAS / OpenBLAS; config.deterministic forces the
// hand-written path on both devices. The hand-written fp32 path computes every output element as
// one fma chain in k order from its initial value (kernels/gemm_problem.h), bit-identical on the
// CPU and CUDA and for any micro-batch split; the fp16 tensor-core kernel is split-invariant for
// split points that are multiples of 16 rows (see kernels/gemm_f16.cu).
#pragma once

#include "core/tensor.h"
#include "kernels/gemm_config.h"
#include "kernels/gradient_mode.h"

namespace gradaccum {

// y[N, out] = x[N, in] · w[out, in]ᵀ + b[out] (b optional), then ReLU when fuse_relu.
void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                    bool fuse_relu = false, const GemmConfig& config = {});

// dx[N, in] (mode) dy[N, out] · w[out, in]. When relu_out is given (the ReLU output that fed
// this layer, i.e. x), the result is multiplied by the ReLU mask relu_out > 0: the backward of
// that ReLU fused into this product.
// Where the mask is 0, dx is 0 (Overwrite) or unchanged (Accumulate).
void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, GradientMode mode,
                           const Tensor* relu_out = nullptr, const GemmConfig& config = {});

// Kahan compensation buffers for the parameter gradients (f32, same shapes as dw and db).
struct KahanState {
  Tensor* dw_comp = nullptr;
  Tensor* db_comp = nullptr;
};

// dw[out, in] (mode) dyᵀ · x and db[out] (mode) Σ_rows dy, in one pass; db optional.
// With kahan, Accumulate mode adds with Kahan compensation (the GEMM's accumulate epilogue):
// this micro-batch's sum is computed as its own chain from 0, then Kahan-added to (dw, dw_comp)
// with the convention of kernels/accumulate.h (the true sum is dw + dw_comp). Overwrite with kahan
// stores the sum and zeroes the compensation. db_comp is required exactly when db is given.
void linear_backward_params(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor* db,
                            GradientMode mode, const KahanState* kahan = nullptr,
                            const GemmConfig& config = {});

}  // namespace gradaccum
