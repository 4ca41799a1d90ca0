// IDX files: element types and byte order, gzip through zlib, Fashion-MNIST from Debian's
// package, and every kind of malformed input, each an Error naming the file and the problem.
#include "data/idx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/fashion_mnist.h"

namespace gradaccum {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using data::IdxArray;
using data::IdxType;
using data::Split;

// An IDX image: the magic, big-endian dimensions, then `payload` as given.
Bytes idx(std::uint8_t type, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b{0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8)
      b.push_back(static_cast<std::uint8_t>(d >> s));
  }
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

Bytes gzip(const Bytes& in) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&z, static_cast<uLong>(in.size())) + 32);
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

Bytes counting(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i)
    b[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return b;
}

IdxArray parse(const Bytes& b) {
  return data::parse_idx(b.data(), b.size(), "x.idx");
}

std::string error_of(const Bytes& b) {
  try {
    parse(b);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Idx, U8ArrayPlainAndGzipped) {
  const Bytes payload = counting(24);
  const Bytes plain = idx(0x08, {2, 3, 4}, payload);
  for (const Bytes& file : {plain, gzip(plain)}) {
    const IdxArray a = parse(file);
    EXPECT_EQ(a.type, IdxType::U8);
    EXPECT_EQ(a.dims, (std::vector<std::int64_t>{2, 3, 4}));
    EXPECT_EQ(a.elements(), 24);
    EXPECT_EQ(a.bytes, payload);
  }
}

TEST(Idx, WiderTypesAreBigEndianInTheFile) {
  // i16 -2, i32 0x01020304, f32 1.5, f64 -0.25, each big-endian.
  const IdxArray s = parse(idx(0x0B, {1}, {0xFF, 0xFE}));
  std::int16_t i16;
  std::memcpy(&i16, s.bytes.data(), 2);
  EXPECT_EQ(i16, -2);
  const IdxArray i = parse(idx(0x0C, {1}, {1, 2, 3, 4}));
  std::int32_t i32;
  std::memcpy(&i32, i.bytes.data(), 4);
  EXPECT_EQ(i32, 0x01020304);
  const IdxArray f = parse(gzip(idx(0x0D, {1}, {0x3F, 0xC0, 0, 0})));
  float f32;
  std::memcpy(&f32, f.bytes.data(), 4);
  EXPECT_EQ(f32, 1.5f);
  const IdxArray d = parse(idx(0x0E, {1}, {0xBF, 0xD0, 0, 0, 0, 0, 0, 0}));
  double f64;
  std::memcpy(&f64, d.bytes.data(), 8);
  EXPECT_EQ(f64, -0.25);
  EXPECT_EQ(parse(idx(0x08, {0, 5}, {})).elements(), 0) << "an empty array is an array";
  // Found by the fuzzer: huge dimensions beside a zero one are still an empty array.
  EXPECT_EQ(parse(idx(0x08, {0, 0xFFFFFFF0u, 0xFFFFFFF0u, 0xFFFFFFF0u}, {})).elements(), 0);
}

TEST(Idx, MalformedHeadersAreErrorsNamingTheProblem) {
  const auto expect = [](const Bytes& b, const std::string& needle) {
    const std::string e = error_of(b);
    EXPECT_NE(e.find("IDX file 'x.idx': " + needle), std::string::npos) << e;
  };
  expect({}, "truncated: expected a 4-byte magic");
  expect({0, 0, 8}, "truncated: expected a 4-byte magic");
  expect({0x93, 'N', 'U', 'M', 'P', 'Y'},
         "not an IDX file: expected the magic 00 00 <type> "
         "<dimensions>, got 93 4e 55 4d");
  expect(idx(0x07, {1}, {0}), "unknown element type 0x07");
  expect(idx(0x08, {}, {}), "0 dimensions: expected 1 to 8");
  expect(idx(0x08, std::vector<std::uint32_t>(9, 1), {0}), "9 dimensions: expected 1 to 8");
  expect(Bytes{0, 0, 8, 3, 0, 0, 0, 2, 0, 0}, "truncated: the header needs 12 bytes");
  expect(idx(0x08, {65536, 65536, 2}, {}), "dimensions [65536, 65536, 2] of u8 are more than");
  expect(idx(0x0E, {65536, 65536}, {}), "dimensions [65536, 65536] of f64 are more than");
}

TEST(Idx, TruncatedOrOverlongDataIsAnError) {
  const Bytes plain = idx(0x08, {4, 5}, counting(20));
  Bytes cut(plain.begin(), plain.end() - 1);
  EXPECT_NE(error_of(cut).find("need 20 bytes of elements"), std::string::npos) << error_of(cut);
  Bytes longer = plain;
  longer.push_back(0);
  EXPECT_NE(error_of(longer).find("data past the elements"), std::string::npos);
  // Inside a complete gzip stream: the same checks.
  EXPECT_NE(error_of(gzip(cut)).find("the data has 19"), std::string::npos) << error_of(gzip(cut));
  EXPECT_NE(error_of(gzip(longer)).find("data past the elements"), std::string::npos);
}

TEST(Idx, BrokenGzipStreamsAreErrors) {
  const Bytes z = gzip(idx(0x08, {64, 64}, counting(4096)));
  const Bytes cut(z.begin(), z.begin() + static_cast<std::ptrdiff_t>(z.size() / 2));
  EXPECT_NE(error_of(cut).find("truncated gzip stream"), std::string::npos) << error_of(cut);
  Bytes flipped = z;
  flipped[flipped.size() - 6] ^= 0xFF;  // the CRC-32 in the trailer
  EXPECT_NE(error_of(flipped).find("corrupted gzip stream (zlib: incorrect data check)"),
            std::string::npos)
      << error_of(flipped);
  Bytes trailing = z;
  trailing.push_back(0x42);
  EXPECT_NE(error_of(trailing).find("data past the elements"), std::string::npos)
      << error_of(trailing);
  // A header promising far more than a small stream can inflate to: refused, nothing allocated.
  const Bytes liar = gzip(idx(0x08, {60000, 60000}, {1, 2, 3}));
  EXPECT_NE(error_of(liar).find("cannot hold them"), std::string::npos) << error_of(liar);
}

class IdxFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("gradaccum_idx_" + std::string(info->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const Bytes& b) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return path;
  }
  std::string load_error(Split split) {
    try {
      data::load_fashion_mnist(dir_.string(), split);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  fs::path dir_;
};

TEST_F(IdxFiles, MissingFilesAndDirectoriesAreErrors) {
  try {
    data::load_idx((dir_ / "none.gz").string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none.gz': cannot open"), std::string::npos) << e.what();
  }
  try {
    data::load_idx(dir_.string());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(data::load_idx(write("a.idx", idx(0x08, {3}, {1, 2, 3}))).bytes, (Bytes{1, 2, 3}));
}

TEST_F(IdxFiles, FashionMnistFilesThatAreNotWhatTheyShouldBe) {
  const Bytes images = gzip(idx(0x08, {2, 28, 28}, counting(2 * 784)));
  const Bytes labels = gzip(idx(0x08, {2}, {3, 9}));
  // A labels file where the images should be.
  write("t10k-images-idx3-ubyte.gz", labels);
  write("t10k-labels-idx1-ubyte.gz", labels);
  EXPECT_NE(load_error(Split::Test)
                .find("expected images, u8 [N, 28, 28]; got [2] u8 (a labels "
                      "file?)"),
            std::string::npos)
      << load_error(Split::Test);
  // Images as labels.
  write("t10k-images-idx3-ubyte.gz", images);
  write("t10k-labels-idx1-ubyte.gz", images);
  EXPECT_NE(load_error(Split::Test)
                .find("expected labels, u8 [N]; got [2, 28, 28] u8 (an images "
                      "file?)"),
            std::string::npos)
      << load_error(Split::Test);
  // Counts that differ, a label out of range, images of another size.
  write("t10k-labels-idx1-ubyte.gz", gzip(idx(0x08, {3}, {1, 2, 3})));
  EXPECT_NE(load_error(Split::Test).find("2 images but 3 labels"), std::string::npos);
  write("t10k-labels-idx1-ubyte.gz", gzip(idx(0x08, {2}, {1, 10})));
  EXPECT_NE(load_error(Split::Test).find("label 10 at 1; expected a class in [0, 10)"),
            std::string::npos);
  write("t10k-images-idx3-ubyte.gz", gzip(idx(0x08, {2, 27, 29}, counting(2 * 27 * 29))));
  EXPECT_NE(load_error(Split::Test).find("got [2, 27, 29] u8"), std::string::npos);
  // A good pair: pixels scaled to [0, 1].
  write("t10k-images-idx3-ubyte.gz", images);
  write("t10k-labels-idx1-ubyte.gz", labels);
  const data::FashionMnist f = data::load_fashion_mnist(dir_.string(), Split::Test);
  EXPECT_EQ(f.images.shape(), Shape({2, 784}));
  const std::vector<float> px = f.images.to_vector();
  const Bytes raw = counting(2 * 784);
  for (std::size_t i = 0; i < px.size(); ++i)
    ASSERT_EQ(px[i], static_cast<float>(raw[i]) / 255.0f) << i;
  EXPECT_EQ(f.labels, (Bytes{3, 9}));
  // The train split's files are not there.
  EXPECT_NE(load_error(Split::Train).find("train-images-idx3-ubyte.gz': cannot open"),
            std::string::npos);
}

// The real files (scripts/setup.sh installs dataset-fashion-mnist).
TEST(FashionMnist, DebiansTestSplitHasTenThousandBalancedImages) {
  const std::string dir = data::fashion_mnist_dir();
  if (!fs::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "no Fashion-MNIST in " << dir << " (apt-get install dataset-fashion-mnist)";
  }
  const data::FashionMnist f = data::load_fashion_mnist(dir, Split::Test);
  EXPECT_EQ(f.images.shape(), Shape({10000, 784}));
  std::vector<int> per_class(10, 0);
  for (std::uint8_t l : f.labels)
    per_class[l] += 1;
  EXPECT_EQ(per_class, std::vector<int>(10, 1000));
  const std::vector<float> px = f.images.to_vector();
  double sum = 0;
  float lo = 1, hi = 0;
  for (float p : px) {
    sum += p;
    lo = std::min(lo, p);
    hi = std::max(hi, p);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
  // The mean pixel of Fashion-MNIST is about 0.286 (72.9 / 255).
  EXPECT_NEAR(sum / static_cast<double>(px.size()), 0.286, 0.01);
}

}  // namespace
}  // namespace gradaccum
