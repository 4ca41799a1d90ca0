// The thread's current stream (core/stream.h): the legacy stream by default, set and restored by
// StreamGuard, per thread.
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>

#include "core/stream.h"

namespace gradaccum {
namespace {

Stream fake_stream(std::uintptr_t v) {
  return reinterpret_cast<Stream>(v);  // never dereferenced: only compared
}

TEST(CurrentStream, LegacyByDefaultNestedGuardsRestore) {
  EXPECT_EQ(current_stream(), nullptr);
  {
    StreamGuard a(fake_stream(0x100));
    EXPECT_EQ(current_stream(), fake_stream(0x100));
    {
      StreamGuard b(fake_stream(0x200));
      EXPECT_EQ(current_stream(), fake_stream(0x200));
    }
    EXPECT_EQ(current_stream(), fake_stream(0x100));
  }
  EXPECT_EQ(current_stream(), nullptr);
}

TEST(CurrentStream, EachThreadHasItsOwn) {
  StreamGuard a(fake_stream(0x100));
  Stream seen = fake_stream(1);
  std::thread t([&] { seen = current_stream(); });
  t.join();
  EXPECT_EQ(seen, nullptr);
  EXPECT_EQ(current_stream(), fake_stream(0x100));
}

}  // namespace
}  // namespace gradaccum
