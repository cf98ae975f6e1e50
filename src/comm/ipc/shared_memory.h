// The IPC backend's only view of memory that the ranks of a group share: a
// segment each rank allocates and exports as a handle, which the other
// ranks open (map into their own address space), and the copies and
// reductions that run on segments, enqueued on the caller's stream.
//
// On a GPU this is device memory shared with cudaIpcGetMemHandle /
// cudaIpcOpenMemHandle, cudaMemcpyAsync and a reduction kernel
// (cuda_ipc_memory.h): ranks that share one GPU then reduce each other's
// data in device memory instead of staging it through the host. In the CPU
// tests it is POSIX shared memory, memcpy and comm/reduce.h, run late on
// purpose (tests/mpi/comm/shm_memory.h), so that the setup protocol and
// the chunk algorithms run across real processes without a GPU.
#pragma once

#include <cstddef>
#include <string>

#include "common/dtype.h"
#include "comm/reduce_op.h"

namespace smp::comm::ipc {

// Most inputs one reduce() takes: the ranks of one group on one device.
inline constexpr int kMaxInputs = 64;

class SharedMemory {
 public:
  virtual ~SharedMemory() = default;

  // Names the memory that `probe` (a caller's buffer) lives in: ranks whose
  // keys are equal can open each other's segments (host name and the GPU's
  // PCI bus id).
  virtual std::string key(const void *probe) = 0;
  // A segment of `bytes` where `probe` lives, and in *handle what a peer
  // passes to open(); nullptr with *error set when that fails.
  virtual void *allocate(size_t bytes, const void *probe, std::string *handle, std::string *error) = 0;
  virtual void release(void *segment) noexcept = 0;
  // A peer's segment mapped here; nullptr with *error set when that fails.
  virtual const void *open(const std::string &handle, std::string *error) = 0;
  virtual void close(const void *mapped) noexcept = 0;

  // Enqueued on `stream` (a cudaStream_t; NULL = default stream), after
  // the work enqueued on it before. Throw smp::Error(Backend) on failure.
  virtual void copy(void *dst, const void *src, size_t bytes, void *stream) = 0;
  // out[i] = ins[0][i] op ins[1][i] op ... op ins[n-1][i], combined in that
  // order with comm/reduce.h's accumulator rules (float32 for FLOAT16 and
  // BFLOAT16, wrapping integer SUM/PROD), AVG divided by group_size at the
  // end, so every rank that reduces the same inputs gets the same bytes.
  // 2 <= n <= kMaxInputs; out does not overlap any input.
  virtual void reduce(void *out, const void *const *ins, int n, size_t count, DType t, ReduceOp op,
                      int group_size, void *stream) = 0;
  // Blocks until everything enqueued on `stream` has completed.
  virtual void synchronize(void *stream) = 0;
};

}  // namespace smp::comm::ipc
