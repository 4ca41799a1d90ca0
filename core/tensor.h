// A contiguous, row-major tensor of f32 or f16 on the CPU or the CUDA device. It owns its
// memory (move-only); copies are explicit: to(device), to(dtype), clone().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace gradaccum {

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: no storage, defined() is false

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::CPU);
  static Tensor full(const Shape& shape, float value, DType dtype = DType::f32,
                     Device device = Device::CPU);
  // Values are rounded to nearest even when dtype is f16.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            DType dtype = DType::f32, Device device = Device::CPU);

  // A tensor over memory it does not own (Storage::borrow): the owner keeps `data` alive and in
  // place for the tensor's life. A distributed window's gradients live in its reduction buffer.
  static Tensor borrow(void* data, const Shape& shape, DType dtype, Device device);

  // A moved-from tensor is undefined (defined() is false), like a default-constructed one.
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  bool defined() const { return defined_; }
  const Shape& shape() const { return shape_; }
  std::int64_t size(int dim) const { return shape_[dim]; }
  int rank() const { return shape_.rank(); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_.device(); }
  bool is_cuda() const { return device() == Device::CUDA; }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t nbytes() const { return storage_.bytes(); }
  std::string str() const;  // "Tensor[2, 3] f32 cpu"

  // Typed access to the raw elements (device memory for CUDA tensors). T must have the size
  // of the dtype: float for f32, a 16-bit type (std::uint16_t, __half) for f16.
  template <typename T>
  T* data() {
    check_element_size(sizeof(T));
    return static_cast<T*>(storage_.data());
  }
  template <typename T>
  const T* data() const {
    check_element_size(sizeof(T));
    return static_cast<const T*>(storage_.data());
  }
  void* raw_data() { return storage_.data(); }
  const void* raw_data() const { return storage_.data(); }

  // Host copy of the values as float (f16 widened exactly).
  std::vector<float> to_vector() const;
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;  // converting copy on the same device
  Tensor clone() const;
  // Copies src's elements into this tensor; shapes and dtypes must match, devices may differ.
  void copy_from(const Tensor& src);
  void zero_();
  // Same elements, new shape with the same element count (no copy).
  Tensor reshape(const Shape& shape) &&;
  // Copy of rows [begin, end) along the first dimension.
  Tensor rows(std::int64_t begin, std::int64_t end) const;

 private:
  Tensor(const Shape& shape, DType dtype, Device device);
  Tensor(const Shape& shape, DType dtype, Storage storage);
  void check_element_size(std::size_t size) const;

  Shape shape_;
  DType dtype_ = DType::f32;
  Storage storage_;
  bool defined_ = false;
};

// Throws a clear error unless `t` is defined and has the expected dtype / device / shape.
void check_dtype(const Tensor& t, DType expected, const char* what);
void check_device(const Tensor& t, Device expected, const char* what);
void check_shape(const Tensor& t, const Shape& expected, const char* what);

}  // namespace gradaccum
