// The emulated device's bug finders, for tests and tools: the order in which the threads of a
// block run between barriers. Everything else uses the environment variable
//   GRADACCUM_EMU_SCHEDULE=forward|reverse|random:SEED   (default forward)
// which is read at the first launch; set_schedule() overrides it for the whole process.
#pragma once

#include <cstdint>
#include <string>

namespace gradaccum::emu {

enum class ScheduleKind { Forward, Reverse, Random };

struct Schedule {
  ScheduleKind kind = ScheduleKind::Forward;
  std::uint64_t seed = 0;  // Random only: a fresh permutation per block and barrier phase
};

// "forward", "reverse" or "random:SEED" (SEED a decimal integer); throws gradaccum::Error
// otherwise.
Schedule parse_schedule(const std::string& text);
std::string to_string(const Schedule& schedule);

void set_schedule(const Schedule& schedule);
void set_schedule(const std::string& text);
Schedule current_schedule();

// Sets a schedule for a scope and restores the previous one.
class ScopedSchedule {
 public:
  explicit ScopedSchedule(const Schedule& schedule) : saved_(current_schedule()) {
    set_schedule(schedule);
  }
  explicit ScopedSchedule(const std::string& text) : ScopedSchedule(parse_schedule(text)) {}
  ~ScopedSchedule() { set_schedule(saved_); }
  ScopedSchedule(const ScopedSchedule&) = delete;
  ScopedSchedule& operator=(const ScopedSchedule&) = delete;

 private:
  Schedule saved_;
};

// Counters since the start of the process (for tests and benchmarks of the emulator itself).
struct Stats {
  std::uint64_t launches = 0;
  std::uint64_t blocks = 0;
  std::uint64_t threads = 0;
  std::uint64_t fiber_switches = 0;
};
Stats stats();

// Fiber stack size in KiB (GRADACCUM_EMU_STACK_KB, default 256), fixed at the first launch.
std::size_t stack_kib();

}  // namespace gradaccum::emu
