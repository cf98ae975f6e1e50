#include "comm/staged/cuda_copy_engine.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "cuda/runtime.h"

namespace smp::comm::staged {

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
  void wait(Ticket t) override {
    if (t == 0 || t > events_.size()) return;
    cuda::check(cudaEventSynchronize(events_[t - 1]), "staged: cudaEventSynchronize");
  }

 private:
  Ticket issue(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what) {
    // Events and copies on the device of the buffers (and of the caller's
    // stream), whatever thread this is.
    if (!device_) device_ = std::make_unique<cuda::DeviceGuard>(
        cuda::device_of(kind == cudaMemcpyDeviceToHost ? src : dst));
    cudaEvent_t e = nullptr;
    cuda::check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "staged: cudaEventCreate");
    events_.push_back(e);
    if (bytes) cuda::check(cudaMemcpyAsync(dst, src, bytes, kind, stream_), what);
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
