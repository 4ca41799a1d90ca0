// Reading a whole input file (an IDX dataset, a state file) into memory, as an input boundary:
// it must be a regular file of at most a given size, read completely. Every problem is an Error
// "<what> '<path>': <problem>".
#pragma once

#include <cstdint>
#include <string>

namespace gradaccum {

std::string read_file_bytes(const std::string& path, std::uint64_t max_bytes,
                            const std::string& what);

}  // namespace gradaccum
