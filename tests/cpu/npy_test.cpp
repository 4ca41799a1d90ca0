// .npy I/O: round trips, files written by NumPy (tests/data/npy, made with NumPy 1.24), and
// every kind of malformed input, each of which must be an Error naming the file and problem.
#include "core/npy.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "core/half.h"
#include "test_util.h"

namespace gradaccum {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

std::string fixture(const std::string& file) {
  return std::string(GRADACCUM_SOURCE_DIR) + "/tests/data/npy/" + file;
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A fresh directory per test (tests may run in parallel processes), removed afterwards.
class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("gradaccum_npy_" + std::string(info->name()) + "_" +
                                        std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& file) const { return (dir_ / file).string(); }
  std::string write(const std::string& file, const Bytes& bytes) const {
    const std::string p = path(file);
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good());
    return p;
  }

  fs::path dir_;
};

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

// A .npy image with the given header dict text, padded like NumPy does, then `data`.
Bytes make_npy(const std::string& dict, const Bytes& data, int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::size_t header = dict.size() + 1;
  header += (64 - (prefix + header) % 64) % 64;
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(major), 0};
  for (std::size_t i = 0; i < prefix - 8; ++i) {
    out.push_back(static_cast<std::uint8_t>((header >> (8 * i)) & 0xFF));
  }
  out.insert(out.end(), dict.begin(), dict.end());
  out.insert(out.end(), header - dict.size() - 1, ' ');
  out.push_back('\n');
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes f32_bytes(std::initializer_list<float> values) {
  Bytes out(values.size() * 4);
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

std::string dict_for(const std::string& descr, const std::string& shape,
                     const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
}

// Parses `bytes` as `name` and expects an Error whose message names the file and contains
// every one of `parts`.
void expect_npy_error(const Bytes& bytes, const std::string& name,
                      std::initializer_list<const char*> parts) {
  try {
    Tensor t = parse_npy(bytes.data(), bytes.size(), name);
    ADD_FAILURE() << "expected an error for " << name << ", got " << t.str();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'" + name + "'"), std::string::npos) << "file not named: " << msg;
    for (const char* part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' missing from: " << msg;
    }
  }
}

// ---- round trips -------------------------------------------------------------------------------

TEST_F(NpyTest, RoundTripsF32AndF16AtEveryRank) {
  const std::vector<Shape> shapes = {Shape(),          Shape({5}),          Shape({2, 3}),
                                     Shape({2, 3, 4}), Shape({2, 1, 3, 2}), Shape({0}),
                                     Shape({3, 0}),    Shape({2, 0, 4, 1})};
  std::uint64_t seed = 1;
  for (DType dtype : {DType::f32, DType::f16}) {
    for (const Shape& shape : shapes) {
      SCOPED_TRACE(shape.str() + " " + dtype_name(dtype));
      Tensor t = test::random_tensor(shape, seed++, dtype);
      const std::string p = path("t.npy");
      save_npy(p, t);
      Tensor back = load_npy(p);
      EXPECT_TRUE(same_bits(t, back));
      EXPECT_EQ(back.device(), Device::CPU);
      // Data starts at a multiple of 64 bytes, and the header ends with '\n'.
      const Bytes bytes = read_file(p);
      ASSERT_GE(bytes.size(), 10u);
      EXPECT_EQ(bytes[6], 1);
      const std::size_t offset = 10 + (bytes[8] | (bytes[9] << 8));
      EXPECT_EQ(offset % 64, 0u);
      EXPECT_EQ(bytes[offset - 1], '\n');
      EXPECT_EQ(bytes.size() - offset, t.nbytes());
      Tensor parsed = parse_npy(bytes.data(), bytes.size(), "image");
      EXPECT_TRUE(same_bits(t, parsed));
    }
  }
}

TEST_F(NpyTest, RoundTripsSpecialValuesBitExactly) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor t = Tensor::from_vector({-0.0f, inf, -inf, 1e-45f, 3.4028235e38f, 0.1f}, {6});
  save_npy(path("s.npy"), t);
  EXPECT_TRUE(same_bits(t, load_npy(path("s.npy"))));
  Tensor h = Tensor::empty({4}, DType::f16);
  const std::uint16_t bits[] = {0x8000, 0x7C00, 0x0001, 0x7E01};  // -0, inf, subnormal, NaN
  std::memcpy(h.raw_data(), bits, sizeof bits);
  save_npy(path("h.npy"), h);
  EXPECT_TRUE(same_bits(h, load_npy(path("h.npy"))));
}

// What save_npy writes is byte-for-byte what numpy.save writes for the same array.
TEST_F(NpyTest, SavedFilesMatchNumPyByteForByte) {
  struct Case {
    const char* file;
    Tensor tensor;
  };
  Case cases[] = {
      {"v1_f32_2x3.npy", Tensor::from_vector({1.5f, -2.0f, 3.25f, 0.0f, 0.125f, 65504.0f}, {2, 3})},
      {"v1_f16_2x2.npy",
       Tensor::from_vector({1.0f, -0.5f, 65504.0f, 0x1.0p-24f}, {2, 2}, DType::f16)},
      {"v1_f32_1d.npy", Tensor::from_vector({1, 2, 3, 4, 5}, {5})},
      {"v1_f32_0d.npy", Tensor::from_vector({7.5f}, Shape())},
      {"v1_f32_0x3.npy", Tensor::zeros({0, 3})},
  };
  for (Case& c : cases) {
    SCOPED_TRACE(c.file);
    save_npy(path(c.file), c.tensor);
    EXPECT_EQ(read_file(path(c.file)), read_file(fixture(c.file)));
  }
}

TEST_F(NpyTest, SaveReportsAnUnwritablePath) {
  Tensor t = Tensor::zeros({2});
  const std::string p = path("no/such/dir/t.npy");
  try {
    save_npy(p, t);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot open for writing"), std::string::npos) << e.what();
  }
  EXPECT_THROW(save_npy(path("u.npy"), Tensor()), Error);
}

// ---- files written by NumPy --------------------------------------------------------------------

TEST(NpyNumPyFiles, ReadsVersion1F32) {
  Tensor t = load_npy(fixture("v1_f32_2x3.npy"));
  EXPECT_EQ(t.shape(), Shape({2, 3}));
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.to_vector(), (std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 0.125f, 65504.0f}));
}

TEST(NpyNumPyFiles, ReadsVersions2And3) {
  for (const char* file : {"v2_f32_2x3.npy", "v3_f32_2x3.npy"}) {
    SCOPED_TRACE(file);
    Tensor t = load_npy(fixture(file));
    EXPECT_EQ(t.shape(), Shape({2, 3}));
    EXPECT_EQ(t.to_vector(), (std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 0.125f, 65504.0f}));
  }
  const Bytes v2 = read_file(fixture("v2_f32_2x3.npy"));
  ASSERT_GT(v2.size(), 8u);
  EXPECT_EQ(v2[6], 2);
}

TEST(NpyNumPyFiles, ReadsF16) {
  Tensor t = load_npy(fixture("v1_f16_2x2.npy"));
  EXPECT_EQ(t.shape(), Shape({2, 2}));
  EXPECT_EQ(t.dtype(), DType::f16);
  const std::uint16_t* h = t.data<std::uint16_t>();
  EXPECT_EQ(h[0], 0x3C00);  // 1
  EXPECT_EQ(h[1], 0xB800);  // -0.5
  EXPECT_EQ(h[2], 0x7BFF);  // 65504
  EXPECT_EQ(h[3], 0x0001);  // 2^-24
}

TEST(NpyNumPyFiles, Reads1DAnd0DAndZeroSize) {
  Tensor v = load_npy(fixture("v1_f32_1d.npy"));
  EXPECT_EQ(v.shape(), Shape({5}));
  EXPECT_EQ(v.to_vector(), (std::vector<float>{1, 2, 3, 4, 5}));
  Tensor s = load_npy(fixture("v1_f32_0d.npy"));
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.to_vector(), (std::vector<float>{7.5f}));
  Tensor z = load_npy(fixture("v1_f32_0x3.npy"));
  EXPECT_EQ(z.shape(), Shape({0, 3}));
  EXPECT_EQ(z.numel(), 0);
}

void expect_load_error(const std::string& path, std::initializer_list<const char*> parts) {
  try {
    load_npy(path);
    ADD_FAILURE() << "expected an error for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "path not named: " << msg;
    for (const char* part : parts) {
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' missing from: " << msg;
    }
  }
}

TEST(NpyNumPyFiles, RejectsUnsupportedNumPyFilesClearly) {
  expect_load_error(fixture("fortran_f32_2x3.npy"), {"Fortran-order"});
  expect_load_error(fixture("f8_2x3.npy"), {"unsupported dtype '<f8'"});
  expect_load_error(fixture("be_f32_2x3.npy"), {"big-endian", "'>f4'"});
}

TEST_F(NpyTest, LoadReportsMissingFilesAndDirectories) {
  expect_load_error(path("missing.npy"), {"cannot open"});
  expect_load_error(dir_.string(), {"is a directory"});
  expect_load_error(write("empty.npy", {}), {"file is empty"});
}

// load_npy and parse_npy agree on malformed files, and load_npy names the path.
TEST_F(NpyTest, LoadReportsMalformedFiles) {
  const Bytes good = make_npy(dict_for("<f4", "(2,)"), f32_bytes({1, 2}));
  EXPECT_EQ(load_npy(write("good.npy", good)).to_vector(), (std::vector<float>{1, 2}));
  Bytes short_data(good.begin(), good.end() - 1);
  expect_load_error(write("short.npy", short_data), {"data is truncated", "needs 8 bytes"});
  Bytes long_data = good;
  long_data.push_back(0);
  expect_load_error(write("long.npy", long_data), {"1 bytes of trailing data"});
  expect_load_error(write("prefix.npy", Bytes(good.begin(), good.begin() + 9)), {"truncated"});
  Bytes past = good;
  past[8] = 0xFF;
  expect_load_error(write("past.npy", past), {"runs past the end of the file"});
}

// ---- malformed input, built byte by byte -------------------------------------------------------

TEST(NpyMalformed, TruncatedFiles) {
  const Bytes good = make_npy(dict_for("<f4", "(2, 3)"), Bytes(24, 0));
  EXPECT_NO_THROW(parse_npy(good.data(), good.size(), "good.npy"));
  expect_npy_error({}, "empty.npy", {"file is empty"});
  expect_npy_error(Bytes(good.begin(), good.begin() + 3), "t3.npy", {"truncated"});
  expect_npy_error(Bytes(good.begin(), good.begin() + 7), "t7.npy", {"truncated"});
  expect_npy_error(Bytes(good.begin(), good.begin() + 9), "t9.npy", {"truncated"});
  expect_npy_error(Bytes(good.begin(), good.begin() + 40), "t40.npy",
                   {"header length 118 runs past the end of the file"});
  expect_npy_error(Bytes(good.begin(), good.end() - 4), "data.npy",
                   {"data is truncated", "[2, 3]", "needs 24 bytes", "has 20"});
  const Bytes v2 = make_npy(dict_for("<f4", "(2, 3)"), Bytes(24, 0), 2);
  EXPECT_NO_THROW(parse_npy(v2.data(), v2.size(), "v2.npy"));
  expect_npy_error(Bytes(v2.begin(), v2.begin() + 11), "v2t.npy", {"truncated", "version 2.0"});
}

TEST(NpyMalformed, BadMagicAndVersions) {
  Bytes b = make_npy(dict_for("<f4", "(1,)"), Bytes(4, 0));
  Bytes bad = b;
  bad[1] = 'n';
  expect_npy_error(bad, "magic.npy", {"bad magic"});
  expect_npy_error({'P', 'K', 3, 4}, "zip.npy", {"bad magic"});
  for (auto [major, minor] :
       {std::pair{4, 0}, std::pair{0, 0}, std::pair{1, 1}, std::pair{255, 7}}) {
    Bytes v = b;
    v[6] = static_cast<std::uint8_t>(major);
    v[7] = static_cast<std::uint8_t>(minor);
    const std::string version = std::to_string(major) + "." + std::to_string(minor);
    expect_npy_error(v, "version.npy", {"unsupported .npy format version", version.c_str()});
  }
}

TEST(NpyMalformed, HeaderThatLiesAboutTheShape) {
  expect_npy_error(make_npy(dict_for("<f4", "(2, 3)"), Bytes(20, 0)), "short.npy",
                   {"data is truncated", "needs 24 bytes"});
  expect_npy_error(make_npy(dict_for("<f4", "(2, 3)"), Bytes(28, 0)), "long.npy",
                   {"4 bytes of trailing data", "needs 24 bytes", "has 28"});
  expect_npy_error(make_npy(dict_for("<f2", "(3,)"), Bytes(8, 0)), "f16.npy",
                   {"2 bytes of trailing data"});
  expect_npy_error(make_npy(dict_for("<f4", "()"), Bytes(0)), "scalar.npy",
                   {"data is truncated", "needs 4 bytes"});
  expect_npy_error(make_npy(dict_for("<f4", "(0, 5)"), Bytes(4, 0)), "zero.npy", {"trailing data"});
}

TEST(NpyMalformed, OverflowingSizes) {
  expect_npy_error(make_npy(dict_for("<f4", "(4294967296, 4294967296)"), {}), "elems.npy",
                   {"more elements than fit"});
  expect_npy_error(make_npy(dict_for("<f4", "(3037000500, 3037000500, 1, 1)"), {}), "elems2.npy",
                   {"more elements than fit"});
  // 2^61 elements fit an int64 count, but not 2^63 bytes.
  expect_npy_error(make_npy(dict_for("<f4", "(2305843009213693952,)"), {}), "bytes.npy",
                   {"more bytes than fit"});
  expect_npy_error(make_npy(dict_for("<f4", "(9223372036854775808,)"), {}), "dim.npy",
                   {"too large"});
  expect_npy_error(make_npy(dict_for("<f4", "(99999999999999999999999999,)"), {}), "dim2.npy",
                   {"too large"});
  // A zero anywhere makes the product zero, however large the other dims.
  const Bytes zero = make_npy(dict_for("<f4", "(9223372036854775807, 0)"), {});
  EXPECT_EQ(parse_npy(zero.data(), zero.size(), "z").numel(), 0);
}

TEST(NpyMalformed, UnsupportedLayoutAndDtypes) {
  expect_npy_error(make_npy(dict_for("<f4", "(2, 3)", "True"), Bytes(24, 0)), "fortran.npy",
                   {"Fortran-order"});
  for (const char* descr : {"<f8", "<i4", "|u1", "|f4", "=f4", "<c8", "f4", "<f4 ", ""}) {
    SCOPED_TRACE(descr);
    expect_npy_error(make_npy(dict_for(descr, "(1,)"), Bytes(4, 0)), "dtype.npy",
                     {"unsupported dtype", (std::string("'") + descr + "'").c_str()});
  }
  expect_npy_error(make_npy(dict_for(">f4", "(1,)"), Bytes(4, 0)), "be.npy", {"big-endian"});
  expect_npy_error(make_npy(dict_for(">f2", "(1,)"), Bytes(2, 0)), "be2.npy", {"big-endian"});
  expect_npy_error(
      make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", Bytes(4, 0)),
      "struct.npy", {"structured dtypes are not supported"});
}

TEST(NpyMalformed, BadShapes) {
  expect_npy_error(make_npy(dict_for("<f4", "(-1, 3)"), {}), "neg.npy", {"negative dimension -1"});
  expect_npy_error(make_npy(dict_for("<f4", "(2, -9223372036854775808)"), {}), "neg2.npy",
                   {"negative dimension"});
  expect_npy_error(make_npy(dict_for("<f4", "(1, 1, 1, 1, 1)"), Bytes(4, 0)), "rank5.npy",
                   {"5 dimensions", "at most 4"});
  expect_npy_error(make_npy(dict_for("<f4", "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)"), Bytes(4, 0)),
                   "rank10.npy", {"10 dimensions"});
  expect_npy_error(make_npy(dict_for("<f4", "(3)"), Bytes(12, 0)), "int.npy", {"not a tuple"});
  expect_npy_error(make_npy(dict_for("<f4", "[3]"), Bytes(12, 0)), "list.npy",
                   {"'shape' must be a tuple"});
  expect_npy_error(make_npy(dict_for("<f4", "(2.5,)"), Bytes(12, 0)), "float.npy",
                   {"expected ',' or ')'"});
  expect_npy_error(make_npy(dict_for("<f4", "(,)"), Bytes(12, 0)), "comma.npy",
                   {"expected an integer"});
  expect_npy_error(make_npy(dict_for("<f4", "(1,,)"), Bytes(4, 0)), "comma2.npy",
                   {"expected an integer"});
  expect_npy_error(make_npy(dict_for("<f4", "(01,)"), Bytes(4, 0)), "octal.npy", {"leading zeros"});
}

TEST(NpyMalformed, MalformedDicts) {
  const std::string dt = "'descr': '<f4'", fo = "'fortran_order': False", sh = "'shape': (1,)";
  const Bytes d4(4, 0);
  expect_npy_error(make_npy("{" + fo + ", " + sh + "}", d4), "nodescr.npy", {"'descr' is missing"});
  expect_npy_error(make_npy("{" + dt + ", " + sh + "}", d4), "nofortran.npy",
                   {"'fortran_order' is missing"});
  expect_npy_error(make_npy("{" + dt + ", " + fo + "}", d4), "noshape.npy", {"'shape' is missing"});
  expect_npy_error(make_npy("{}", d4), "emptydict.npy", {"'descr' is missing"});
  expect_npy_error(make_npy("hello world", d4), "garbage.npy", {"must be a dict"});
  expect_npy_error(make_npy("", d4), "blank.npy", {"must be a dict", "unterminated"});
  expect_npy_error(make_npy("{" + dt + ", " + fo, d4), "open.npy", {"unterminated"});
  expect_npy_error(make_npy("{'descr: '<f4'}", d4), "str.npy", {"expected ':'"});
  expect_npy_error(make_npy("{'descr", d4), "str2.npy", {"unterminated string"});
  expect_npy_error(make_npy("{" + dt + ", " + fo + ", " + sh + ", 'extra': 1}", d4), "extra.npy",
                   {"unexpected key 'extra'"});
  expect_npy_error(make_npy("{" + dt + ", " + dt + ", " + fo + ", " + sh + "}", d4), "dup.npy",
                   {"'descr' appears twice"});
  expect_npy_error(make_npy("{'descr': '<f4', 'fortran_order': 0, " + sh + "}", d4), "bool.npy",
                   {"must be True or False"});
  expect_npy_error(make_npy("{'descr': '<f4', 'fortran_order': Falsey, " + sh + "}", d4),
                   "bool2.npy", {"must be True or False"});
  expect_npy_error(make_npy("{" + dt + " " + fo + ", " + sh + "}", d4), "nocomma.npy",
                   {"expected ',' or '}'"});
  expect_npy_error(make_npy("{" + dt + ", " + fo + ", " + sh + "} x", d4), "after.npy",
                   {"unexpected text after the header dict"});
  expect_npy_error(make_npy("{" + dt + ", " + fo + ", " + sh + "}}", d4), "after2.npy",
                   {"unexpected text after the header dict"});
  expect_npy_error(make_npy("{1: 2}", d4), "key.npy", {"expected a quoted key"});
  expect_npy_error(make_npy("{'descr': <f4}", d4), "unquoted.npy", {"must be a string"});
  // Python's escapes: \' is a quote; an unknown escape keeps its backslash ('\<f4' != '<f4').
  expect_npy_error(make_npy("{'descr': 'it\\'s', " + fo + ", " + sh + "}", d4), "esc.npy",
                   {"unsupported dtype 'it's'"});
  expect_npy_error(make_npy("{'descr': '\\<f4', " + fo + ", " + sh + "}", d4), "esc2.npy",
                   {"unsupported dtype '\\x5c<f4'"});
  // Arbitrary bytes in the header are reported printably.
  expect_npy_error(make_npy(std::string("{\x01\xff", 3), d4), "bin.npy", {"\\x01"});
}

TEST(NpyMalformed, AcceptsThePythonLiteralSubset) {
  const Bytes d = f32_bytes({1, 2, 3, 4, 5, 6});
  const char* dicts[] = {
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 3)}",
      "{'shape':(2,3,),'fortran_order':False,'descr':'<f4'}",
      "  {\t'descr' :\n'<f4' , 'fortran_order' : False , 'shape' : ( 2 , 3 ) , }  \n",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
  };
  for (const char* dict : dicts) {
    SCOPED_TRACE(dict);
    const Bytes b = make_npy(dict, d);
    Tensor t = parse_npy(b.data(), b.size(), "ok.npy");
    EXPECT_EQ(t.shape(), Shape({2, 3}));
    EXPECT_EQ(t.to_vector(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  }
  // Versions 2.0 and 3.0 read like 1.0; the data need not be 64-byte aligned (old NumPy: 16).
  for (int major : {2, 3}) {
    const Bytes b = make_npy(dict_for("<f4", "(6,)"), d, major);
    EXPECT_EQ(parse_npy(b.data(), b.size(), "v.npy").shape(), Shape({6}));
  }
  Bytes unaligned = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const std::string dict = dict_for("<f4", "(6,)") + "\n";
  unaligned.push_back(static_cast<std::uint8_t>(dict.size()));
  unaligned.push_back(0);
  unaligned.insert(unaligned.end(), dict.begin(), dict.end());
  unaligned.insert(unaligned.end(), d.begin(), d.end());
  EXPECT_EQ(parse_npy(unaligned.data(), unaligned.size(), "u.npy").to_vector(),
            (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

}  // namespace
}  // namespace gradaccum
