// Checks for CUDA runtime and cuBLAS calls: a failure becomes gradaccum::Error with the file,
// line, the call, and the error's name and description. Include from .cu files only.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace gradaccum::detail {
const char* cublas_status_name(cublasStatus_t status);
}

#define GA_CUDA_CHECK(call)                                                         \
  do {                                                                              \
    const cudaError_t ga_cuda_err_ = (call);                                        \
    if (ga_cuda_err_ != cudaSuccess) {                                              \
      ::gradaccum::detail::throw_error(__FILE__, __LINE__, #call,                   \
                                       std::string("expected cudaSuccess, got ") +  \
                                           cudaGetErrorName(ga_cuda_err_) + " (" +  \
                                           cudaGetErrorString(ga_cuda_err_) + ")"); \
    }                                                                               \
  } while (0)

#define GA_CUBLAS_CHECK(call)                                          \
  do {                                                                 \
    const cublasStatus_t ga_cublas_st_ = (call);                       \
    if (ga_cublas_st_ != CUBLAS_STATUS_SUCCESS) {                      \
      ::gradaccum::detail::throw_error(                                \
          __FILE__, __LINE__, #call,                                   \
          std::string("expected CUBLAS_STATUS_SUCCESS, got ") +        \
              ::gradaccum::detail::cublas_status_name(ga_cublas_st_)); \
    }                                                                  \
  } while (0)
