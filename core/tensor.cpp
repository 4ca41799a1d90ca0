#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <sstream>
#include <utility>

#include "core/cuda_device.h"
#include "core/half.h"

namespace gradaccum {
namespace {

std::size_t checked_bytes(const Shape& shape, DType dtype) {
  const std::int64_t n = shape.numel();
  GA_CHECK(
      static_cast<std::uint64_t>(n) <= std::numeric_limits<std::size_t>::max() / dtype_size(dtype),
      "tensor of shape " << shape.str() << " is too large to address in bytes");
  return static_cast<std::size_t>(n) * dtype_size(dtype);
}

detail::CopyKind copy_kind(Device dst, Device src) {
  if (dst == Device::CPU) {
    return src == Device::CPU ? detail::CopyKind::HostToHost : detail::CopyKind::DeviceToHost;
  }
  return src == Device::CPU ? detail::CopyKind::HostToDevice : detail::CopyKind::DeviceToDevice;
}

void copy_bytes(void* dst, Device dst_dev, const void* src, Device src_dev, std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::CPU && src_dev == Device::CPU) {
    std::memcpy(dst, src, bytes);
  } else {
    detail::cuda_copy(dst, src, bytes, copy_kind(dst_dev, src_dev));
  }
}

}  // namespace

Tensor::Tensor(const Shape& shape, DType dtype, Device device)
    : shape_(shape), dtype_(dtype), storage_(checked_bytes(shape, dtype), device), defined_(true) {}

Tensor::Tensor(const Shape& shape, DType dtype, Storage storage)
    : shape_(shape), dtype_(dtype), storage_(std::move(storage)), defined_(true) {}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype, Device device) {
  return Tensor(shape, dtype, Storage::borrow(data, checked_bytes(shape, dtype), device));
}

Tensor::Tensor(Tensor&& other) noexcept
    : shape_(std::exchange(other.shape_, Shape())),
      dtype_(other.dtype_),
      storage_(std::move(other.storage_)),
      defined_(std::exchange(other.defined_, false)) {}

Tensor& Tensor::operator=(Tensor&& other) noexcept {
  if (this != &other) {
    shape_ = std::exchange(other.shape_, Shape());
    dtype_ = other.dtype_;
    storage_ = std::move(other.storage_);
    defined_ = std::exchange(other.defined_, false);
  }
  return *this;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return Tensor(shape, dtype, device);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t(shape, dtype, device);
  t.zero_();
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, DType dtype, Device device) {
  // The tensor first (an OutOfMemoryError naming the bytes when it cannot exist), then the fill
  // on the host: no std::vector of the whole size, whose failure would be a bare std::bad_alloc.
  Tensor out(shape, dtype, device);
  Tensor staging = device == Device::CPU ? Tensor() : Tensor(shape, dtype, Device::CPU);
  Tensor& host = device == Device::CPU ? out : staging;
  const auto n = static_cast<std::size_t>(shape.numel());
  if (dtype == DType::f32) {
    std::fill_n(host.data<float>(), n, value);
  } else {
    std::fill_n(host.data<std::uint16_t>(), n, float_to_half_bits(value));
  }
  if (device != Device::CPU) out.copy_from(staging);
  return out;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, DType dtype,
                           Device device) {
  GA_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(),
           "from_vector: shape " << shape.str() << " needs " << shape.numel() << " values, got "
                                 << values.size());
  Tensor host(shape, dtype, Device::CPU);
  if (dtype == DType::f32) {
    if (!values.empty()) std::memcpy(host.raw_data(), values.data(), host.nbytes());
  } else {
    auto* h = host.data<std::uint16_t>();
    for (std::size_t i = 0; i < values.size(); ++i)
      h[i] = float_to_half_bits(values[i]);
  }
  return device == Device::CPU ? std::move(host) : host.to(device);
}

std::string Tensor::str() const {
  if (!defined_) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor" << shape_.str() << " " << dtype_name(dtype_) << " " << device_name(device());
  return os.str();
}

void Tensor::check_element_size(std::size_t size) const {
  GA_CHECK(defined_, "access to the data of an undefined tensor");
  GA_CHECK(size == dtype_size(dtype_),
           "element type of " << size << " bytes does not match " << str());
}

std::vector<float> Tensor::to_vector() const {
  GA_CHECK(defined_, "to_vector of an undefined tensor");
  if (is_cuda()) return to(Device::CPU).to_vector();
  std::vector<float> out;
  try {
    out.resize(static_cast<std::size_t>(numel()));
  } catch (const std::exception&) {  // std::bad_alloc or std::length_error
    const std::size_t bytes = static_cast<std::size_t>(numel()) * sizeof(float);
    throw OutOfMemoryError("out of host memory allocating " + std::to_string(bytes) +
                               " bytes for to_vector() of " + str(),
                           bytes, __FILE__, __LINE__);
  }
  if (dtype_ == DType::f32) {
    if (!out.empty()) std::memcpy(out.data(), raw_data(), nbytes());
  } else {
    const auto* h = data<std::uint16_t>();
    for (std::size_t i = 0; i < out.size(); ++i)
      out[i] = half_bits_to_float(h[i]);
  }
  return out;
}

Tensor Tensor::to(Device device) const {
  GA_CHECK(defined_, "to(" << device_name(device) << ") of an undefined tensor");
  Tensor out(shape_, dtype_, device);
  copy_bytes(out.raw_data(), device, raw_data(), this->device(), nbytes());
  return out;
}

Tensor Tensor::to(DType dtype) const {
  GA_CHECK(defined_, "to(" << dtype_name(dtype) << ") of an undefined tensor");
  if (dtype == dtype_) return clone();
  return from_vector(to_vector(), shape_, dtype, device());
}

Tensor Tensor::clone() const {
  return to(device());
}

void Tensor::copy_from(const Tensor& src) {
  GA_CHECK(defined_ && src.defined_, "copy_from needs two defined tensors");
  GA_CHECK(src.shape_ == shape_,
           "copy_from: shape mismatch, expected " << shape_.str() << ", got " << src.shape_.str());
  GA_CHECK(src.dtype_ == dtype_, "copy_from: dtype mismatch, expected "
                                     << dtype_name(dtype_) << ", got " << dtype_name(src.dtype_));
  copy_bytes(raw_data(), device(), src.raw_data(), src.device(), nbytes());
}

void Tensor::zero_() {
  GA_CHECK(defined_, "zero_ of an undefined tensor");
  if (nbytes() == 0) return;
  if (is_cuda()) {
    detail::cuda_zero(raw_data(), nbytes());
  } else {
    std::memset(raw_data(), 0, nbytes());
  }
}

Tensor Tensor::reshape(const Shape& shape) && {
  GA_CHECK(defined_, "reshape of an undefined tensor");
  GA_CHECK(shape.numel() == numel(), "reshape: " << shape_.str() << " has " << numel()
                                                 << " elements, " << shape.str() << " has "
                                                 << shape.numel());
  Tensor out = std::move(*this);
  out.shape_ = shape;
  return out;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  GA_CHECK(defined_ && rank() >= 1, "rows() needs a defined tensor of rank >= 1, got " << str());
  GA_CHECK(0 <= begin && begin <= end && end <= shape_[0],
           "rows [" << begin << ", " << end << ") out of range for " << str());
  std::vector<std::int64_t> dims = shape_.dims();
  dims[0] = end - begin;
  Tensor out(Shape(dims), dtype_, device());
  const std::size_t row_bytes = shape_[0] == 0 ? 0 : nbytes() / static_cast<std::size_t>(shape_[0]);
  copy_bytes(out.raw_data(), device(),
             static_cast<const char*>(raw_data()) + static_cast<std::size_t>(begin) * row_bytes,
             device(), out.nbytes());
  return out;
}

void check_dtype(const Tensor& t, DType expected, const char* what) {
  GA_CHECK(t.defined(), what << ": tensor is undefined");
  GA_CHECK(t.dtype() == expected,
           what << ": expected dtype " << dtype_name(expected) << ", got " << t.str());
}

void check_device(const Tensor& t, Device expected, const char* what) {
  GA_CHECK(t.defined(), what << ": tensor is undefined");
  GA_CHECK(t.device() == expected,
           what << ": expected device " << device_name(expected) << ", got " << t.str());
}

void check_shape(const Tensor& t, const Shape& expected, const char* what) {
  GA_CHECK(t.defined(), what << ": tensor is undefined");
  GA_CHECK(t.shape() == expected,
           what << ": expected shape " << expected.str() << ", got " << t.str());
}

}  // namespace gradaccum
