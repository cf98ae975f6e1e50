// The staged backend's only view of the GPU: asynchronous copies between
// device memory and host staging memory, in issue order on the caller's
// stream, plus staging allocations. On a GPU this is cudaMemcpyAsync and
// events into pinned memory (cuda_copy_engine.h); in the CPU unit tests it
// is memcpy with host memory standing in for device memory
// (host_copy_engine.h), so the chunk pipeline is tested without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace smp::comm::staged {

// One operation's copies on one stream: executed in the order issued, each
// after all work enqueued on the stream before it. Not thread-safe; every
// operation opens its own queue.
class CopyQueue {
 public:
  using Ticket = uint64_t;  // 0 = nothing to wait for
  virtual ~CopyQueue() = default;
  virtual Ticket to_host(void *host, const void *device, size_t bytes) = 0;
  virtual Ticket to_device(void *device, const void *host, size_t bytes) = 0;
  // Blocks until copy t, and every copy issued before it, has completed.
  virtual void wait(Ticket t) = 0;
};

class CopyEngine {
 public:
  virtual ~CopyEngine() = default;
  // stream: the caller's cudaStream_t (NULL = default stream).
  virtual std::unique_ptr<CopyQueue> queue(void *stream) = 0;
  // Staging memory the copies can run from asynchronously (pinned).
  virtual void *alloc_host(size_t bytes) = 0;
  virtual void free_host(void *p) noexcept = 0;
};

}  // namespace smp::comm::staged
