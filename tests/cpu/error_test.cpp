// Errors: GA_CHECK / GA_FAIL messages name the file, line, condition and message.
#include "core/error.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "core/tensor.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) || \
    __has_feature(thread_sanitizer)
#define GA_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GA_TEST_SANITIZED 1
#endif

namespace gradaccum {
namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(Error, CheckMessageNamesFileLineConditionAndMessage) {
  const int want = 3, got = 2;
  int line = 0;
  try {
    // clang-format off
    line = __LINE__; GA_CHECK(want == got, "expected " << want << ", got " << got);
    // clang-format on
    FAIL() << "GA_CHECK did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(contains(msg, __FILE__)) << msg;
    EXPECT_TRUE(contains(msg, ":" + std::to_string(line) + ":")) << msg;
    EXPECT_TRUE(contains(msg, "want == got")) << msg;
    EXPECT_TRUE(contains(msg, "expected 3, got 2")) << msg;
    EXPECT_EQ(msg, std::string(__FILE__) + ":" + std::to_string(line) +
                       ": check `want == got` failed: expected 3, got 2");
    EXPECT_STREQ(e.file(), __FILE__);
    EXPECT_EQ(e.line(), line);
  }
}

TEST(Error, FailHasNoCondition) {
  int line = 0;
  try {
    // clang-format off
    line = __LINE__; GA_FAIL("broken: " << 42);
    // clang-format on
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              std::string(__FILE__) + ":" + std::to_string(line) + ": broken: 42");
    EXPECT_EQ(e.line(), line);
  }
  EXPECT_NE(line, 0);
}

TEST(Error, PlainMessageDropsTheLocationAndTheCheck) {
  try {
    GA_CHECK(1 + 1 == 3, "expected 3, got " << 2);
    FAIL() << "GA_CHECK did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(plain_message(e), "expected 3, got 2");
  }
  try {
    GA_FAIL("broken: " << 42);
  } catch (const Error& e) {
    EXPECT_EQ(plain_message(e), "broken: 42");
  }
  EXPECT_EQ(plain_message(std::runtime_error("as it is: a.cpp:3: x")), "as it is: a.cpp:3: x");
  // An Error made by hand, without the formatted prefix, keeps its message.
  EXPECT_EQ(plain_message(Error("no prefix", "f.cpp", 7)), "no prefix");
}

TEST(Error, CheckEvaluatesConditionOnceAndMessageOnlyOnFailure) {
  int cond_evals = 0, msg_evals = 0;
  auto count_msg = [&] { return ++msg_evals; };
  GA_CHECK(++cond_evals > 0, "never " << count_msg());
  EXPECT_EQ(cond_evals, 1);
  EXPECT_EQ(msg_evals, 0);
  EXPECT_THROW(GA_CHECK(++cond_evals < 0, "now " << count_msg()), Error);
  EXPECT_EQ(cond_evals, 2);
  EXPECT_EQ(msg_evals, 1);
}

TEST(Error, CheckWorksAsASingleStatement) {
  // The do/while(0) wrapping: usable in an unbraced if/else.
  bool threw = false;
  try {
    if (true)
      GA_CHECK(false, "in an if");
    else
      GA_CHECK(true, "in an else");
  } catch (const Error&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
}

TEST(Error, OutOfMemoryErrorCarriesBytes) {
  const OutOfMemoryError e("out of memory", 12345, "f.cpp", 7);
  EXPECT_EQ(e.bytes(), 12345u);
  EXPECT_STREQ(e.what(), "out of memory");
  EXPECT_STREQ(e.file(), "f.cpp");
  EXPECT_EQ(e.line(), 7);
  const Error& base = e;  // an OutOfMemoryError is an Error
  EXPECT_STREQ(base.what(), "out of memory");
}

TEST(Error, HostAllocationFailureIsOutOfMemoryError) {
#if defined(GA_TEST_SANITIZED)
  GTEST_SKIP() << "sanitizer allocators abort on impossible sizes instead of throwing";
#else
  // 2^61 floats = 2^63 bytes: a valid shape and byte count, but no host can allocate it.
  const std::int64_t n = std::int64_t{1} << 61;
  try {
    Tensor t = Tensor::empty({n});
    FAIL() << "allocated " << t.nbytes() << " bytes";
  } catch (const OutOfMemoryError& e) {
    EXPECT_EQ(e.bytes(), static_cast<std::size_t>(n) * 4);
    EXPECT_TRUE(contains(e.what(), std::to_string(static_cast<std::size_t>(n) * 4))) << e.what();
  }
#endif
}

}  // namespace
}  // namespace gradaccum
