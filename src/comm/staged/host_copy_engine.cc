#include "comm/staged/host_copy_engine.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "comm/reduce.h"

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
  Ticket reduce(void *out, const void *const *ins, int n, size_t count, DType t, ReduceOp op,
                int group_size) override {
    if (e_.trace_) e_.trace_("reduce " + std::to_string(n) + " " + std::to_string(count));
    Op r;
    r.dst = out;
    r.bytes = count * dtype_size(t);
    r.ins.assign(ins, ins + n);
    r.count = count;
    r.t = t;
    r.op = op;
    r.group_size = group_size;
    return push(std::move(r));
  }
  void wait(Ticket t) override {
    if (e_.trace_) e_.trace_("wait");
    run_until(static_cast<size_t>(t));
  }

 private:
  // A copy of `bytes` from src to dst, or (ins not empty) a reduction into
  // dst.
  struct Op {
    void *dst = nullptr;
    const void *src = nullptr;
    size_t bytes = 0;
    std::vector<const void *> ins;
    size_t count = 0;
    DType t = DType::F32;
    ReduceOp op = ReduceOp::Sum;
    int group_size = 1;
  };
  Ticket issue(const char *kind, void *dst, const void *src, size_t bytes) {
    if (e_.trace_) e_.trace_(std::string(kind) + " " + std::to_string(bytes));
    Op o;
    o.dst = dst;
    o.src = src;
    o.bytes = bytes;
    return push(std::move(o));
  }
  Ticket push(Op o) {
    pending_.push_back(std::move(o));
    const Ticket t = pending_.size();
    if (!e_.deferred_) run_until(t);
    return t;
  }
  // Performs operations [done_, upto) in issue order.
  void run_until(size_t upto) {
    for (; done_ < upto && done_ < pending_.size(); ++done_) {
      const Op &o = pending_[done_];
      if (!o.ins.empty()) run_reduce(o);
      else if (o.bytes) std::memcpy(o.dst, o.src, o.bytes);
    }
  }
  // comm/reduce.h's chain into a separate accumulator, so out may be an
  // input.
  static void run_reduce(const Op &o) {
    if (o.count == 0) return;
    if (o.ins.size() == 1) {
      std::memmove(o.dst, o.ins[0], o.bytes);
      return;
    }
    std::vector<char> acc(o.count * accumulator_size(o.t));
    reduce_first(acc.data(), o.ins[0], o.ins[1], o.count, o.t, o.op);
    for (size_t k = 2; k < o.ins.size(); ++k) reduce_accumulate(acc.data(), o.ins[k], o.count, o.t, o.op);
    reduce_finish(o.dst, acc.data(), o.count, o.t, o.op, o.group_size);
  }

  HostCopyEngine &e_;
  std::vector<Op> pending_;
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
