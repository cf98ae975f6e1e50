// The staged backend's only view of the GPU: asynchronous copies between
// device memory and host staging memory and element-wise reductions, in
// issue order on the caller's stream, plus staging allocations. On a GPU
// this is cudaMemcpyAsync, the reduce_many kernel and events, with pinned
// staging memory (cuda_copy_engine.h); in the CPU unit tests it is memcpy
// and comm/reduce.h with host memory standing in for device memory
// (host_copy_engine.h), so the chunk pipeline is tested without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/dtype.h"
#include "comm/reduce_op.h"

namespace smp::comm::staged {

// Inputs one CopyQueue::reduce takes at most.
inline constexpr int kMaxReduceInputs = 64;

// One operation's copies and reductions on one stream: executed in the
// order issued, each after all work enqueued on the stream before it. Not
// thread-safe; every operation opens its own queue.
class CopyQueue {
 public:
  using Ticket = uint64_t;  // 0 = nothing to wait for
  virtual ~CopyQueue() = default;
  virtual Ticket to_host(void *host, const void *device, size_t bytes) = 0;
  virtual Ticket to_device(void *device, const void *host, size_t bytes) = 0;
  // out[i] = ins[0][i] op ins[1][i] op ... op ins[n-1][i], i < count,
  // combined left to right as comm/reduce.h does (float32 accumulator for
  // FLOAT16 / BFLOAT16, AVG divided by group_size once), bit for bit. The
  // inputs may be device or staging memory (the device reads pinned staging
  // memory directly); out is device memory and may be an input itself
  // (the same elements), never partly overlap one. n == 1 copies (its
  // group_size must be 1). 1 <= n <= kMaxReduceInputs.
  virtual Ticket reduce(void *out, const void *const *ins, int n, size_t count, DType t, ReduceOp op,
                        int group_size) = 0;
  // Blocks until operation t, and every one issued before it, has completed.
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
