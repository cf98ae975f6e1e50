#include "comm/staged/cuda_copy_engine.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "cuda/reduce_many.h"
#include "cuda/runtime.h"

namespace smp::comm::staged {

static_assert(kMaxReduceInputs <= cuda::kReduceManyMaxInputs, "reduce() must take every n reduce_many takes");

namespace {

class CudaCopyQueue final : public CopyQueue {
 public:
  explicit CudaCopyQueue(cudaStream_t s) : stream_(s) {}
  ~CudaCopyQueue() override {
    // Copies still in flight read or write staging memory the backend is
    // about to reuse: let them finish before the events go.
    if (!events_.empty()) (void)cudaEventSynchronize(events_.back());
    for (cudaEvent_t e : events_) (void)cudaEventDestroy(e);
  }

  Ticket to_host(void *host, const void *device, size_t bytes) override {
    return issue(host, device, bytes, cudaMemcpyDeviceToHost, "staged: cudaMemcpyAsync (device to host)");
  }
  Ticket to_device(void *device, const void *host, size_t bytes) override {
    return issue(device, host, bytes, cudaMemcpyHostToDevice, "staged: cudaMemcpyAsync (host to device)");
  }
  // One reduce_many launch; its inputs in staging memory are read by the
  // kernel directly (pinned memory is mapped on every device under
  // unified addressing, at the same address). n == 1 is a copy.
  Ticket reduce(void *out, const void *const *ins, int n, size_t count, DType t, ReduceOp op,
                int group_size) override {
    guard(out);
    if (n == 1) {
      if (out != ins[0] && count)
        cuda::check(cudaMemcpyAsync(out, ins[0], count * dtype_size(t), cudaMemcpyDefault, stream_),
                    "staged: cudaMemcpyAsync (device to device)");
    } else {
      cuda::reduce_many(out, ins, n, count, t, static_cast<int>(op), group_size, stream_);
    }
    return record();
  }
  void wait(Ticket t) override {
    if (t == 0 || t > events_.size()) return;
    cuda::check(cudaEventSynchronize(events_[t - 1]), "staged: cudaEventSynchronize");
  }

 private:
  Ticket issue(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what) {
    guard(kind == cudaMemcpyDeviceToHost ? src : dst);
    if (bytes) cuda::check(cudaMemcpyAsync(dst, src, bytes, kind, stream_), what);
    return record();
  }
  // Events, copies and kernels on the device of the buffers (and of the
  // caller's stream), whatever thread this is.
  void guard(const void *device_memory) {
    if (!device_) device_ = std::make_unique<cuda::DeviceGuard>(cuda::device_of(device_memory));
  }
  // An event after everything issued so far: its ticket.
  Ticket record() {
    cudaEvent_t e = nullptr;
    cuda::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "staged: cudaEventCreate");
    events_.push_back(e);
    cuda::check(cudaEventRecord(e, stream_), "staged: cudaEventRecord");
    return events_.size();
  }

  cudaStream_t stream_;
  std::unique_ptr<cuda::DeviceGuard> device_;  // destroyed last: restores the thread's device
  std::vector<cudaEvent_t> events_;
};

}  // namespace

std::unique_ptr<CopyQueue> CudaCopyEngine::queue(void *stream) {
  return std::make_unique<CudaCopyQueue>(static_cast<cudaStream_t>(stream));
}

void *CudaCopyEngine::alloc_host(size_t bytes) { return cuda::alloc_pinned(bytes); }
void CudaCopyEngine::free_host(void *p) noexcept { cuda::free_pinned(p); }

}  // namespace smp::comm::staged
