// SharedMemory on a GPU (shared_memory.h): segments are cudaMalloc'd device
// memory exported with cudaIpcGetMemHandle and mapped by the peers with
// cudaIpcOpenMemHandle; copies are cudaMemcpyAsync and reductions one
// cuda::reduce_many launch over the members' segments.
//
// The segment's device is the device of the probe given to allocate(); all
// later calls (open, copy, reduce, synchronize, release, close) run with
// that device current, because the non-blocking communicator calls them
// from a worker thread that starts on device 0. CUDA's rules apply to the
// caller: a process cannot open a handle it exported itself (use the
// segment pointer directly), each open() needs its close(), and a peer must
// close() a mapping before the owner release()s the segment (freeing an
// exported segment that is still mapped is undefined behaviour in CUDA).
// Built only with CUDA (src/comm/staged/meson.build).
#pragma once

#include <atomic>
#include <cstddef>
#include <string>

#include "comm/ipc/shared_memory.h"

namespace smp::comm::ipc {

class CudaIpcMemory final : public SharedMemory {
 public:
  // Host name + "/" + PCI bus id of the GPU that owns probe (as the NCCL
  // backend's device key, but of the buffer's device, not the current one).
  std::string key(const void *probe) override;
  // *handle: the 64 bytes of a cudaIpcMemHandle_t (binary).
  void *allocate(size_t bytes, const void *probe, std::string *handle, std::string *error) override;
  void release(void *segment) noexcept override;
  const void *open(const std::string &handle, std::string *error) override;
  void close(const void *mapped) noexcept override;

  void copy(void *dst, const void *src, size_t bytes, void *stream) override;
  void reduce(void *out, const void *const *ins, int n, size_t count, DType t, ReduceOp op,
              int group_size, void *stream) override;
  void synchronize(void *stream) override;

 private:
  // The device of the segment from the latest allocate(); -1 before. Atomic
  // because the worker thread may use it after the caller's thread set it.
  std::atomic<int> device_{-1};
};

}  // namespace smp::comm::ipc
