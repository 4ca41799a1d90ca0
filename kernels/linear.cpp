// Linear layer products: argument validation and dispatch by device and GEMM backend.
#include "kernels/linear.h"

#include <climits>

#include "core/error.h"
#include "kernels/gemm_cpu.h"
#include "kernels/gemm_problem.h"

#if GRADACCUM_WITH_CUDA
#include "kernels/gemm.cuh"
#endif

namespace gradaccum {
namespace {

void check_rank2(const Tensor& t, const char* what) {
  GA_CHECK(t.defined(), what << ": tensor is undefined");
  GA_CHECK(t.rank() == 2, what << ": expected a rank-2 tensor, got " << t.str());
}

void check_same_device(const Tensor& t, Device device, const char* what, const char* ref) {
  GA_CHECK(t.device() == device, what << ": all tensors must be on one device; expected "
                                      << device_name(device) << " (as " << ref << "), got "
                                      << t.str());
}

void check_model_dtype(const Tensor& t, DType dtype, const char* what, const char* ref) {
  GA_CHECK(t.dtype() == dtype, what << ": expected dtype " << dtype_name(dtype) << " (as " << ref
                                    << "), got " << t.str());
}

// An operand of the model dtype: `shape`, on `device`, of `dtype` (both as `ref`'s).
void check_operand(const Tensor& t, const Shape& shape, Device device, DType dtype,
                   const char* what, const char* ref) {
  check_shape(t, shape, what);
  check_same_device(t, device, what, ref);
  check_model_dtype(t, dtype, what, ref);
}

const void* ptr_or_null(const Tensor* t) {
  return t == nullptr ? nullptr : t->raw_data();
}

// Runs the problem on the tensors' device with the backend the config selects.
// deterministic forces the hand-written kernels (the only ones with a fixed order).
void run_gemm(const GemmProblem& p, Device device, const GemmConfig& config) {
  const bool vendor = !config.deterministic && config.backend != GemmBackend::Handwritten &&
                      (config.backend == GemmBackend::Vendor || device == Device::CPU);
  if (device == Device::CPU) {
    // Auto on the CPU is the BLAS library when there is one.
    if (vendor && (config.backend == GemmBackend::Vendor || cpu::have_blas())) {
      cpu::gemm_blas(p);
    } else {
      cpu::gemm_handwritten(p);
    }
    return;
  }
#if GRADACCUM_WITH_CUDA
  GA_CHECK(p.M <= INT_MAX && p.N <= INT_MAX && p.K <= INT_MAX,
           "CUDA GEMM dimensions must fit in int, got M=" << p.M << " N=" << p.N << " K=" << p.K);
  if (vendor) {
    cuda::gemm_cublas(p);
  } else if (p.half) {
    cuda::gemm_f16(p);
  } else {
    cuda::gemm_f32(p);
  }
#else
  GA_FAIL("a CUDA tensor reached the linear layer in a build without CUDA support");
#endif
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, bool fuse_relu,
                    const GemmConfig& config) {
  check_rank2(x, "linear_forward x");
  check_rank2(w, "linear_forward w");
  const Device device = x.device();
  const DType dtype = x.dtype();
  const std::int64_t rows = x.size(0), in = x.size(1), out = w.size(0);
  check_same_device(w, device, "linear_forward w", "x");
  check_model_dtype(w, dtype, "linear_forward w", "x");
  GA_CHECK(w.size(1) == in, "linear_forward: w must be [out, in] with in = x.size(1) = "
                                << in << ", got w " << w.str());
  if (b != nullptr) {
    check_operand(*b, Shape{out}, device, dtype, "linear_forward b", "x");
  }
  check_operand(y, Shape{rows, out}, device, dtype, "linear_forward y", "x");
  if (rows == 0 || out == 0) return;

  GemmProblem p;
  p.M = rows;
  p.N = out;
  p.K = in;
  p.a = x.raw_data();
  p.b = w.raw_data();  // [out, in]: n-major
  p.half = dtype == DType::f16;
  p.c = y.raw_data();
  p.c_half = p.half;
  p.bias = ptr_or_null(b);
  p.relu = fuse_relu;
  run_gemm(p, device, config);
}

void linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx, GradientMode mode,
                           const Tensor* relu_out, const GemmConfig& config) {
  check_rank2(dy, "linear_backward_input dy");
  check_rank2(w, "linear_backward_input w");
  const Device device = dy.device();
  const DType dtype = dy.dtype();
  const std::int64_t rows = dy.size(0), out = dy.size(1), in = w.size(1);
  check_same_device(w, device, "linear_backward_input w", "dy");
  check_model_dtype(w, dtype, "linear_backward_input w", "dy");
  GA_CHECK(w.size(0) == out, "linear_backward_input: w must be [out, in] with out = dy.size(1) = "
                                 << out << ", got w " << w.str());
  check_operand(dx, Shape{rows, in}, device, dtype, "linear_backward_input dx", "dy");
  if (relu_out != nullptr) {
    check_operand(*relu_out, Shape{rows, in}, device, dtype, "linear_backward_input relu_out",
                  "dy");
  }
  if (mode == GradientMode::Ignore || rows == 0 || in == 0) return;

  GemmProblem p;
  p.M = rows;
  p.N = in;
  p.K = out;
  p.a = dy.raw_data();
  p.b = w.raw_data();  // [out, in] = [K, N]: k-major
  p.b_kmajor = true;
  p.half = dtype == DType::f16;
  p.c = dx.raw_data();
  p.c_half = p.half;
  p.accumulate = mode == GradientMode::Accumulate;
  p.mask = ptr_or_null(relu_out);
  run_gemm(p, device, config);
}

void linear_backward_params(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor* db,
                            GradientMode mode, const KahanState* kahan, const GemmConfig& config) {
  check_rank2(dy, "linear_backward_params dy");
  check_rank2(x, "linear_backward_params x");
  const Device device = dy.device();
  const DType dtype = dy.dtype();
  const std::int64_t rows = dy.size(0), out = dy.size(1), in = x.size(1);
  check_same_device(x, device, "linear_backward_params x", "dy");
  check_model_dtype(x, dtype, "linear_backward_params x", "dy");
  GA_CHECK(x.size(0) == rows,
           "linear_backward_params: x and dy must have the same number of "
           "rows, got x "
               << x.str() << " and dy " << dy.str());
  check_shape(dw, Shape{out, in}, "linear_backward_params dw");
  check_same_device(dw, device, "linear_backward_params dw", "dy");
  check_dtype(dw, DType::f32, "linear_backward_params dw (gradients are always f32)");
  if (db != nullptr) {
    check_shape(*db, Shape{out}, "linear_backward_params db");
    check_same_device(*db, device, "linear_backward_params db", "dy");
    check_dtype(*db, DType::f32, "linear_backward_params db (gradients are always f32)");
  }
  Tensor* dw_comp = nullptr;
  Tensor* db_comp = nullptr;
  if (kahan != nullptr) {
    dw_comp = kahan->dw_comp;
    db_comp = kahan->db_comp;
    GA_CHECK(dw_comp != nullptr, "linear_backward_params: KahanState given without dw_comp");
    check_shape(*dw_comp, Shape{out, in}, "linear_backward_params kahan dw_comp");
    check_same_device(*dw_comp, device, "linear_backward_params kahan dw_comp", "dy");
    check_dtype(*dw_comp, DType::f32, "linear_backward_params kahan dw_comp");
    GA_CHECK((db == nullptr) == (db_comp == nullptr),
             "linear_backward_params: KahanState::db_comp must be given exactly when db is ("
                 << (db != nullptr ? "db given, db_comp missing" : "db_comp given without db")
                 << ")");
    if (db_comp != nullptr) {
      check_shape(*db_comp, Shape{out}, "linear_backward_params kahan db_comp");
      check_same_device(*db_comp, device, "linear_backward_params kahan db_comp", "dy");
      check_dtype(*db_comp, DType::f32, "linear_backward_params kahan db_comp");
    }
  }
  if (mode == GradientMode::Ignore || out == 0) return;

  GemmProblem p;
  p.M = out;
  p.N = in;
  p.K = rows;
  p.a = dy.raw_data();  // [rows, out] = [K, M]: k-major
  p.a_kmajor = true;
  p.b = x.raw_data();  // [rows, in] = [K, N]: k-major
  p.b_kmajor = true;
  p.half = dtype == DType::f16;
  p.c = dw.raw_data();
  p.accumulate = mode == GradientMode::Accumulate;
  p.comp = dw_comp != nullptr ? dw_comp->data<float>() : nullptr;
  p.row_sum = db != nullptr ? db->data<float>() : nullptr;
  p.row_sum_comp = db_comp != nullptr ? db_comp->data<float>() : nullptr;
  run_gemm(p, device, config);
}

}  // namespace gradaccum
