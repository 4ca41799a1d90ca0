// Making the ranks of a group agree before they train together, and checking that they do:
// the same parameters (broadcast from one rank, or verified), the same configuration. Every
// function is collective, and a disagreement throws the same Error on every rank, so that all
// of them stop together instead of hanging in a later reduction.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "dist/process_group.h"

namespace gradaccum::dist {

// Every rank's tensors get rank `root`'s bytes (CUDA tensors staged through host memory).
// Shapes and dtypes must already agree (check_same_on_every_rank).
void broadcast_tensors(ProcessGroup& pg, const std::vector<Tensor*>& tensors, int root = 0);

// FNV-1a of the tensor's bytes (read to the host for a CUDA tensor).
std::uint64_t tensor_hash(const Tensor& t);

// Throws unless every rank holds the same bytes in each tensor; the error names the first
// tensor that differs and the first rank whose copy differs from rank 0's.
void check_tensors_identical(ProcessGroup& pg,
                             const std::vector<std::pair<std::string, const Tensor*>>& tensors);

// Throws unless every rank passed the same lines; the error names `what`, the first line that
// differs and the first rank that has it otherwise than rank 0.
void check_same_on_every_rank(ProcessGroup& pg, const std::string& what,
                              const std::vector<std::string>& lines);

}  // namespace gradaccum::dist
