#include "flags.h"

#include "core/cuda_device.h"
#include "core/error.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace gradaccum::tools {

Flags::Flags(int argc, const char* const* argv, const std::set<std::string>& valued,
             const std::set<std::string>& switches) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      throw FlagError("unexpected argument '" + arg + "' (flags start with --; see --help)");
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (switches.count(name)) {
      if (has_value) throw FlagError("--" + name + " takes no value, got '" + value + "'");
      switches_.insert(name);
    } else if (valued.count(name)) {
      if (!has_value) {
        if (i + 1 >= argc) throw FlagError("--" + name + " needs a value");
        value = argv[++i];
      }
      if (values_.count(name)) throw FlagError("--" + name + " given twice");
      values_[name] = value;
    } else {
      throw FlagError("unknown flag --" + name + " (see --help)");
    }
  }
}

std::string Flags::str(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  if (it->second.empty()) throw FlagError("--" + name + " needs a non-empty value");
  return it->second;
}

std::int64_t Flags::integer(const std::string& name, std::int64_t fallback, std::int64_t min,
                            std::int64_t max) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  const std::string range =
      " (expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "])";
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
    throw FlagError("--" + name + " = '" + s + "' is not an integer" + range);
  }
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE) throw FlagError("--" + name + " = '" + s + "' is out of range" + range);
  if (end == s.c_str() || *end != '\0') {
    throw FlagError("--" + name + " = '" + s + "' is not an integer" + range);
  }
  if (v < min || v > max) throw FlagError("--" + name + " = " + s + " is out of range" + range);
  return v;
}

double Flags::number(const std::string& name, double fallback, double min, double max) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end == s.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) {
    throw FlagError("--" + name + " = '" + s + "' is not a finite number");
  }
  if (v < min || v > max) {
    throw FlagError("--" + name + " = " + s + " is out of range (expected a number in [" +
                    std::to_string(min) + ", " + std::to_string(max) + "])");
  }
  return v;
}

std::string Flags::choice(const std::string& name, const std::string& fallback,
                          const std::vector<std::string>& choices) const {
  const std::string v = str(name, fallback);
  for (const auto& c : choices) {
    if (v == c) return v;
  }
  std::string list;
  for (const auto& c : choices)
    list += (list.empty() ? "" : "|") + c;
  throw FlagError("--" + name + " = '" + v + "' is not one of " + list);
}

int run_main(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const FlagError& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, plain_message(e).c_str());
    return 1;
  }
}

Device device_flag(const Flags& f) {
  const std::string device = f.choice("device", "auto", {"auto", "cpu", "cuda"});
  if (device == "cuda" && !cuda_available()) {
    throw FlagError(built_with_cuda()
                        ? "--device cuda: no CUDA device is available"
                        : "--device cuda: this build of gradaccum has no CUDA support");
  }
  return device == "cuda" || (device == "auto" && cuda_available()) ? Device::CUDA : Device::CPU;
}

}  // namespace gradaccum::tools
