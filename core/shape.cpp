#include "core/shape.h"

#include <limits>
#include <sstream>

#include "core/error.h"

namespace gradaccum {

Shape::Shape(std::initializer_list<std::int64_t> dims) : Shape(std::vector<std::int64_t>(dims)) {}

Shape::Shape(const std::vector<std::int64_t>& dims) {
  GA_CHECK(dims.size() <= static_cast<std::size_t>(kMaxRank),
           "a tensor has at most " << kMaxRank << " dimensions, got " << dims.size());
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) {
    GA_CHECK(dims[i] >= 0, "dimension " << i << " must be >= 0, got " << dims[i]);
    dims_[i] = dims[i];
  }
  numel();  // rejects shapes whose element count overflows
}

std::int64_t Shape::operator[](int i) const {
  GA_CHECK(i >= 0 && i < rank_, "dimension index " << i << " out of range for rank " << rank_);
  return dims_[i];
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] == 0) return 0;
  }
  for (int i = 0; i < rank_; ++i) {
    GA_CHECK(n <= std::numeric_limits<std::int64_t>::max() / dims_[i],
             "shape " << str() << " has more elements than fit in int64");
    n *= dims_[i];
  }
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != o.dims_[i]) return false;
  }
  return true;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < rank_; ++i)
    os << (i ? ", " : "") << dims_[i];
  os << "]";
  return os.str();
}

}  // namespace gradaccum
