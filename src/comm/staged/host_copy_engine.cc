#include "comm/staged/host_copy_engine.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace smp::comm::staged {

class HostCopyQueue final : public CopyQueue {
 public:
  explicit HostCopyQueue(HostCopyEngine &e) : e_(e) {}
  ~HostCopyQueue() override { run_until(pending_.size()); }

  Ticket to_host(void *host, const void *device, size_t bytes) override {
    return issue("d2h", host, device, bytes);
  }
  Ticket to_device(void *device, const void *host, size_t bytes) override {
    return issue("h2d", device, host, bytes);
  }
  void wait(Ticket t) override {
    if (e_.trace_) e_.trace_("wait");
    run_until(static_cast<size_t>(t));
  }

 private:
  struct Copy {
    void *dst;
    const void *src;
    size_t bytes;
  };
  Ticket issue(const char *kind, void *dst, const void *src, size_t bytes) {
    if (e_.trace_) e_.trace_(std::string(kind) + " " + std::to_string(bytes));
    pending_.push_back({dst, src, bytes});
    const Ticket t = pending_.size();
    if (!e_.deferred_) run_until(t);
    return t;
  }
  // Performs copies [done_, upto) in issue order.
  void run_until(size_t upto) {
    for (; done_ < upto && done_ < pending_.size(); ++done_) {
      const Copy &c = pending_[done_];
      if (c.bytes) std::memcpy(c.dst, c.src, c.bytes);
    }
  }

  HostCopyEngine &e_;
  std::vector<Copy> pending_;
  size_t done_ = 0;
};

std::unique_ptr<CopyQueue> HostCopyEngine::queue(void *) { return std::make_unique<HostCopyQueue>(*this); }

void *HostCopyEngine::alloc_host(size_t bytes) {
  void *p = std::malloc(bytes ? bytes : 1);
  if (!p) throw std::bad_alloc();
  std::lock_guard<std::mutex> lock(mu_);
  ++live_;
  return p;
}

void HostCopyEngine::free_host(void *p) noexcept {
  if (!p) return;
  std::free(p);
  std::lock_guard<std::mutex> lock(mu_);
  --live_;
}

int HostCopyEngine::live_allocations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_;
}

}  // namespace smp::comm::staged
