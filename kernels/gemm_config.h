// Which GEMM implementation a linear-layer product uses.
#pragma once

namespace gradaccum {

enum class GemmBackend {
  Auto,         // hand-written on CUDA; the BLAS library on the CPU when built with one
  Handwritten,  // gradaccum's own kernels (CUDA) / blocked fixed-order loops (CPU)
  Vendor,       // cuBLAS on CUDA, OpenBLAS on the CPU
};

struct GemmConfig {
  GemmBackend backend = GemmBackend::Auto;
  // Bit-reproducible whatever the micro-batch split: every reduction over samples is one
  // sequential fused-multiply-add chain per output element, identical on CPU and CUDA.
  bool deterministic = false;
};

}  // namespace gradaccum
