// A CopyEngine over plain memory for tests: "device" buffers are host
// buffers, reductions run comm/reduce.h. In deferred mode each copy and
// reduction happens only when a wait() covers it, as real asynchronous
// device work may, so a pipeline that reads a staging slot before waiting
// for its copy, or overwrites a slot a pending copy or reduction still
// reads, produces wrong data and fails its test. Every operation and wait
// is appended to a trace (shared with the test) to check the issue order.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "comm/staged/copy_engine.h"

namespace smp::comm::staged {

class HostCopyEngine final : public CopyEngine {
 public:
  // trace: called with "d2h <bytes>", "h2d <bytes>", "reduce <n> <count>",
  // "wait" (may be empty).
  explicit HostCopyEngine(bool deferred, std::function<void(const std::string &)> trace = {})
      : deferred_(deferred), trace_(std::move(trace)) {}

  std::unique_ptr<CopyQueue> queue(void *stream) override;
  void *alloc_host(size_t bytes) override;
  void free_host(void *p) noexcept override;

  // Staging buffers allocated and not yet freed (leak check).
  int live_allocations() const;

 private:
  friend class HostCopyQueue;
  bool deferred_;
  std::function<void(const std::string &)> trace_;
  mutable std::mutex mu_;
  int live_ = 0;
};

}  // namespace smp::comm::staged
