// Reusable staging buffers (pinned on a GPU: cudaMallocHost costs far more
// than a transfer of a few MiB, so buffers are kept and reused). Each
// operation takes its own buffer for its duration, so concurrent operations
// (a send on one thread, a receive on another) never share staging memory
// and never wait on each other here.
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "comm/staged/copy_engine.h"

namespace smp::comm::staged {

class StagingPool {
 public:
  class Buffer {
   public:
    Buffer(StagingPool *pool, char *p, size_t cap) : pool_(pool), p_(p), cap_(cap) {}
    Buffer(Buffer &&o) noexcept : pool_(o.pool_), p_(o.p_), cap_(o.cap_) { o.p_ = nullptr; }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    Buffer &operator=(Buffer &&) = delete;
    ~Buffer() {
      if (p_) pool_->give_back(p_, cap_);
    }
    char *data() const { return p_; }

   private:
    StagingPool *pool_;
    char *p_;
    size_t cap_;
  };

  explicit StagingPool(CopyEngine &engine) : engine_(engine) {}
  ~StagingPool();
  StagingPool(const StagingPool &) = delete;
  StagingPool &operator=(const StagingPool &) = delete;

  // A buffer of at least `bytes`: a free one if one is big enough, else new.
  Buffer take(size_t bytes);

 private:
  void give_back(char *p, size_t cap) noexcept;

  struct Free {
    char *p;
    size_t cap;
  };
  static constexpr size_t kMaxFree = 8;  // kept for reuse; more are released
  CopyEngine &engine_;
  std::mutex mu_;
  std::vector<Free> free_;
};

}  // namespace smp::comm::staged
