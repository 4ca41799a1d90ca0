// A small command-line flag parser for the gradaccum programs: `--name value` or `--name=value`,
// boolean `--name`, with typed, range-checked getters. Every problem is a FlagError whose message
// is one line naming the flag, what was expected and what was given.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace gradaccum::tools {

class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Flags {
 public:
  // `valued` flags take a value; `switches` take none. Anything else is an unknown flag.
  Flags(int argc, const char* const* argv, const std::set<std::string>& valued,
        const std::set<std::string>& switches);

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  bool on(const std::string& name) const { return switches_.count(name) != 0; }
  std::string str(const std::string& name, const std::string& fallback) const;
  // Integer in [min, max]; rejects trailing garbage, signs where min >= 0, and overflow.
  std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) const;
  // Finite number in [min, max].
  double number(const std::string& name, double fallback, double min, double max) const;
  // One of `choices`.
  std::string choice(const std::string& name, const std::string& fallback,
                     const std::vector<std::string>& choices) const;

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
};

// --device auto|cpu|cuda (auto: CUDA when a device is present); cuda without a device, or in a
// build without CUDA, is a FlagError saying which.
Device device_flag(const Flags& f);

// A program's main: runs `body`; a FlagError becomes "program: message" and exit 2, any other
// exception "program: error: message" and exit 1 (one line on stderr, never a crash).
int run_main(const char* program, const std::function<int()>& body);

}  // namespace gradaccum::tools
