#include "train_data.h"

#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/npy.h"
#include "core/random.h"
#include "data/fashion_mnist.h"

namespace gradaccum::tools {
namespace {

class SyntheticData final : public TrainData {
 public:
  SyntheticData(std::int64_t in, std::int64_t hidden, std::int64_t out, std::uint64_t seed)
      : in_(in), x_seed_(seed * 7919 + 17), teacher_(make_mlp(in, hidden, out, seed + 1000003)) {}
  std::int64_t rows() const override { return 0; }
  void gather(const std::vector<std::int64_t>& rows, Tensor& x, Tensor& y) const override {
    const auto n = static_cast<std::int64_t>(rows.size());
    std::vector<float> v(static_cast<std::size_t>(n * in_));
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < in_; ++j) {
        // Element (r, j) of the table uniform({rows, in}, -1, 1, seed) would hold.
        CounterRng rng(x_seed_,
                       static_cast<std::uint64_t>(rows[static_cast<std::size_t>(i)] * in_ + j));
        v[static_cast<std::size_t>(i * in_ + j)] = -1.0f + 2.0f * rng.uniform();
      }
    }
    x = Tensor::from_vector(v, {n, in_});
    autograd::NoGradGuard no_grad;
    y = teacher_.forward(autograd::Variable(x.clone())).value().clone();
  }

 private:
  std::int64_t in_;
  std::uint64_t x_seed_;
  mutable nn::Sequential teacher_;
};

class TableData final : public TrainData {
 public:
  TableData(Tensor x, Tensor y) : x_(std::move(x)), y_(std::move(y)) {}
  std::int64_t rows() const override { return x_.size(0); }
  void gather(const std::vector<std::int64_t>& rows, Tensor& x, Tensor& y) const override {
    x = gather_rows(x_, rows);
    y = gather_rows(y_, rows);
  }

 private:
  Tensor x_, y_;
};

void check_finite(const Tensor& t, const std::string& what) {
  const std::vector<float> v = t.to_vector();
  for (std::size_t i = 0; i < v.size(); ++i) {
    GA_CHECK(std::isfinite(v[i]), what << ": non-finite value " << v[i] << " at element " << i
                                       << "; expected finite values");
  }
}

}  // namespace

nn::Sequential make_mlp(std::int64_t in, std::int64_t hidden, std::int64_t out, std::uint64_t seed,
                        bool batch_norm) {
  nn::Sequential m;
  m.push_back({"fc1", nn::Linear(nn::LinearOptions(in, hidden).seed(seed))});
  if (batch_norm) m.push_back({"bn", nn::BatchNorm1d(hidden)});
  m.push_back({"relu", nn::ReLU()});
  m.push_back({"fc2", nn::Linear(nn::LinearOptions(hidden, out).seed(seed + 1))});
  return m;
}

std::unique_ptr<TrainData> synthetic_data(std::int64_t in, std::int64_t hidden, std::int64_t out,
                                          std::uint64_t seed) {
  return std::make_unique<SyntheticData>(in, hidden, out, seed);
}

std::unique_ptr<TrainData> npy_data(const std::string& data, const std::string& targets,
                                    std::int64_t in, std::int64_t out, const std::string& flag,
                                    const std::string& targets_flag) {
  const std::string x_name = flag + " " + data, y_name = targets_flag + " " + targets;
  Tensor x = load_npy(data).to(DType::f32);
  Tensor y = load_npy(targets).to(DType::f32);
  GA_CHECK(x.rank() == 2 && x.size(1) == in,
           x_name << ": expected shape [rows, " << in << "] (--in), got " << x.shape().str());
  GA_CHECK(y.rank() == 2 && y.size(1) == out,
           y_name << ": expected shape [rows, " << out << "] (--out), got " << y.shape().str());
  GA_CHECK(x.size(0) == y.size(0), x_name << " has " << x.size(0) << " rows but " << y_name
                                          << " has " << y.size(0)
                                          << "; expected one target row per input row");
  GA_CHECK(x.size(0) > 0, x_name << " has no rows; expected at least one");
  check_finite(x, x_name);
  check_finite(y, y_name);
  return std::make_unique<TableData>(std::move(x), std::move(y));
}

std::unique_ptr<TrainData> fashion_mnist_data(bool test_split) {
  data::FashionMnist f = data::load_fashion_mnist(
      data::fashion_mnist_dir(), test_split ? data::Split::Test : data::Split::Train);
  Tensor y = f.images.clone();
  return std::make_unique<TableData>(std::move(f.images), std::move(y));
}

Tensor gather_rows(const Tensor& src, const std::vector<std::int64_t>& rows) {
  GA_CHECK(src.rank() == 2 && src.dtype() == DType::f32 && src.device() == Device::CPU,
           "gather_rows: expected a CPU f32 table, got " << src.str());
  const std::int64_t width = src.size(1);
  Tensor out = Tensor::empty({static_cast<std::int64_t>(rows.size()), width}, DType::f32);
  const float* s = src.data<float>();
  float* d = out.data<float>();
  const auto row_bytes = static_cast<std::size_t>(width) * sizeof(float);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    GA_CHECK(rows[i] >= 0 && rows[i] < src.size(0),
             "gather_rows: row " << rows[i] << " of a table of " << src.size(0));
    std::memcpy(d + i * static_cast<std::size_t>(width),
                s + static_cast<std::size_t>(rows[i]) * static_cast<std::size_t>(width), row_bytes);
  }
  return out;
}

double evaluate_l1(nn::Sequential& model, const TrainData& data, DType dtype, Device device) {
  autograd::NoGradGuard no_grad;
  struct Evaluation {  // evaluation mode while evaluating, training mode again however it ends
    nn::Module& m;
    explicit Evaluation(nn::Module& module) : m(module) { m.eval(); }
    ~Evaluation() { m.train(); }
  } evaluation(model);
  // Chunk means weighted by their elements: a sum over a chunk could overflow f16.
  nn::L1Loss mean(Reduction::Mean);
  constexpr std::int64_t kChunk = 1000;
  const std::int64_t n = data.rows();
  double total = 0, elements = 0;
  for (std::int64_t r0 = 0; r0 < n; r0 += kChunk) {
    std::vector<std::int64_t> rows(static_cast<std::size_t>(std::min(kChunk, n - r0)));
    std::iota(rows.begin(), rows.end(), r0);
    Tensor x, y;
    data.gather(rows, x, y);
    const autograd::Variable loss = mean(model.forward(autograd::Variable(x.to(dtype).to(device))),
                                         autograd::Variable(y.to(dtype).to(device)));
    total += static_cast<double>(loss.item()) * static_cast<double>(y.numel());
    elements += static_cast<double>(y.numel());
  }
  return total / elements;
}

}  // namespace gradaccum::tools
