#include "dist/rank_agreement.h"

#include <algorithm>
#include <cstring>

#include "core/cuda_device.h"
#include "dist/group_error.h"

namespace gradaccum::dist {
namespace {

std::vector<std::uint64_t> gather_u64(ProcessGroup& pg, std::uint64_t v) {
  std::vector<std::uint64_t> all(static_cast<std::size_t>(pg.size()));
  pg.allgather(&v, sizeof v, all.data());
  return all;
}

std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) {
    s += l;
    s += '\n';
  }
  return s;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    const std::size_t nl = s.find('\n', start);
    out.push_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace

void broadcast_tensors(ProcessGroup& pg, const std::vector<Tensor*>& tensors, int root) {
  for (Tensor* t : tensors) {
    GA_CHECK(t != nullptr && t->defined(), "broadcast_tensors: an undefined tensor");
    if (t->is_cuda()) {
      Tensor host = t->to(Device::CPU);
      pg.broadcast(host.raw_data(), host.nbytes(), root);
      t->copy_from(host);
    } else {
      pg.broadcast(t->raw_data(), t->nbytes(), root);
    }
  }
}

std::uint64_t tensor_hash(const Tensor& t) {
  if (!t.is_cuda()) return fnv1a(t.raw_data(), t.nbytes());
  const Tensor host = t.to(Device::CPU);
  return fnv1a(host.raw_data(), host.nbytes());
}

void check_tensors_identical(ProcessGroup& pg,
                             const std::vector<std::pair<std::string, const Tensor*>>& tensors) {
  const std::size_t n = tensors.size();
  std::vector<std::uint64_t> mine(n);
  for (std::size_t i = 0; i < n; ++i)
    mine[i] = tensor_hash(*tensors[i].second);
  std::vector<std::uint64_t> all(n * static_cast<std::size_t>(pg.size()));
  pg.allgather(mine.data(), n * sizeof(std::uint64_t), all.data());
  for (std::size_t i = 0; i < n; ++i) {
    for (int r = 1; r < pg.size(); ++r) {
      GA_GROUP_CHECK(all[static_cast<std::size_t>(r) * n + i] == all[i],
                     "'" << tensors[i].first << "' differs between rank 0 and rank " << r
                         << " (expected the same bytes on every rank)");
    }
  }
}

void check_same_on_every_rank(ProcessGroup& pg, const std::string& what,
                              const std::vector<std::string>& lines) {
  const std::string text = join(lines);
  const std::vector<std::uint64_t> hashes = gather_u64(pg, fnv1a(text.data(), text.size()));
  if (std::all_of(hashes.begin(), hashes.end(), [&](std::uint64_t h) { return h == hashes[0]; }))
    return;
  // Someone differs: gather every rank's text (padded to the longest) to say where.
  const std::vector<std::uint64_t> lengths = gather_u64(pg, text.size());
  const std::size_t longest = *std::max_element(lengths.begin(), lengths.end());
  std::string padded = text;
  padded.resize(longest, '\0');
  std::string all(longest * static_cast<std::size_t>(pg.size()), '\0');
  pg.allgather(padded.data(), longest, all.data());
  const auto text_of = [&](int r) {
    return all.substr(static_cast<std::size_t>(r) * longest,
                      static_cast<std::size_t>(lengths[static_cast<std::size_t>(r)]));
  };
  const std::vector<std::string> first = split_lines(text_of(0));
  for (int r = 1; r < pg.size(); ++r) {
    const std::vector<std::string> other = split_lines(text_of(r));
    for (std::size_t i = 0; i < std::max(first.size(), other.size()); ++i) {
      const std::string a = i < first.size() ? first[i] : "(nothing)";
      const std::string b = i < other.size() ? other[i] : "(nothing)";
      GA_GROUP_CHECK(a == b, what << " differs between ranks: rank 0 has '" << a << "', rank " << r
                                  << " has '" << b << "' (expected the same on every rank)");
    }
  }
  GA_GROUP_CHECK(false, what << " differs between ranks");  // a hash collision's twin: unreachable
}

}  // namespace gradaccum::dist
