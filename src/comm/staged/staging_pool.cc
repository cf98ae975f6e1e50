#include "comm/staged/staging_pool.h"

#include <algorithm>

namespace smp::comm::staged {

StagingPool::~StagingPool() {
  for (const Free &f : free_) engine_.free_host(f.p);
}

StagingPool::Buffer StagingPool::take(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->cap >= bytes && (best == free_.end() || it->cap < best->cap)) best = it;
    if (best != free_.end()) {
      const Free f = *best;
      free_.erase(best);
      return Buffer(this, f.p, f.cap);
    }
  }
  // Round up to a power of two (at least 64 KiB) so that slightly different
  // sizes reuse one buffer.
  size_t cap = size_t{64} << 10;
  while (cap < bytes) cap <<= 1;
  return Buffer(this, static_cast<char *>(engine_.alloc_host(cap)), cap);
}

void StagingPool::give_back(char *p, size_t cap) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.size() < kMaxFree) {
    free_.push_back({p, cap});
    return;
  }
  // Full: release the smallest of the kept buffers and the returned one.
  auto smallest = std::min_element(free_.begin(), free_.end(),
                                   [](const Free &a, const Free &b) { return a.cap < b.cap; });
  Free incoming{p, cap};
  if (smallest->cap < incoming.cap) std::swap(*smallest, incoming);
  engine_.free_host(incoming.p);
}

}  // namespace smp::comm::staged
