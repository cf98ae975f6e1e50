// CUDA memory over the host backend: device buffers are staged through
// pinned host buffers in chunks (pipeline.h), and each chunk goes through
// the group's host backend (MPI, with its float32-accumulating half
// reductions). It serves when NCCL is missing or refuses the group (NCCL
// rejects two ranks on one GPU), so every multi-rank GPU program also runs
// with all its ranks on one GPU.
//
// Reduce-scatter of large blocks reduces on the device (CopyQueue::reduce):
// only the pieces bound for peers cross to the host, and the host exchanges
// them over host's point-to-point (tag kExchangeTag) without reducing. Each
// chunk then costs one kernel, and a kernel costs ~0.3 ms when the ranks
// share a GPU (two processes' kernels take turns on it; the copies do not:
// measured on an H200, BENCHMARKS.md), the configuration this backend
// mostly serves (NCCL serves ranks with GPUs of their own). So blocks below
// device_reduce_min_bytes reduce on the host, as the other reductions
// (allreduce) always do: the whole input is staged and the output copied
// back, copies that overlap the exchange.
//
// Chunks: a fixed size when chunk_bytes is given (SMP_STAGED_CHUNK_BYTES);
// by default (kAutoChunk) a call is cut into kPipelineChunks chunks so the
// copies overlap even at 1 MiB, each between kMinAutoChunkBytes and
// kDefaultChunkBytes.
//
// Every operation is blocking for the host (MPI runs on the host) and
// ordered on the caller's stream: the device-to-host copies wait for the
// work enqueued on `stream` before the call, and when the call returns the
// results are in device memory. gatherv is staged whole (its chunk count
// would need every rank's count, which only root knows).
//
// Point-to-point is staged whole and goes out as the host backend's own
// message, through p2p_host (the group's host backend, whose communicator
// and framing host-memory sends and receives use): a send from device
// memory must match a receive into host memory and the reverse, which
// chunk framing or a communicator of the staged path's own would break
// (seen on an H200: a CUDA tensor sent to a host buffer never arrived).
// send/isend stage the buffer before the message goes out; recv copies it
// to the device before returning, irecv in wait/test. The copies do not
// overlap the transfer, unlike the collectives'.
#pragma once

#include <cstddef>
#include <memory>

#include "comm/backend.h"
#include "comm/staged/copy_engine.h"
#include "comm/staged/staging_pool.h"

namespace smp::comm::staged {

// Tag of reduce-scatter's exchange on the host backend's point-to-point
// (the largest tag MPI guarantees). User messages go through p2p_host, a
// communicator of their own, when backend_select wires the backend.
inline constexpr int kExchangeTag = 32767;

// Bytes per chunk (per rank block for reduce-scatter / allgather): the
// largest automatic chunk; SMP_STAGED_CHUNK_BYTES fixes another
// (comm/backend_select.cc).
inline constexpr size_t kDefaultChunkBytes = size_t{2} << 20;
// chunk_bytes meaning: kPipelineChunks chunks per call, each at least
// kMinAutoChunkBytes (smaller ones cost more per byte than they hide) and at
// most kDefaultChunkBytes.
inline constexpr size_t kAutoChunk = 0;
inline constexpr size_t kPipelineChunks = 4;
inline constexpr size_t kMinAutoChunkBytes = size_t{256} << 10;
// Reduce-scatter blocks from this many bytes reduce on the device; below,
// on the host (SMP_STAGED_RS_DEVICE_MIN_BYTES overrides it). Device
// reduction pays once a chunk's exchange outlasts a kernel's turn on a
// shared GPU: 8 MiB blocks make 2 MiB chunks.
inline constexpr size_t kDeviceReduceMinBytes = size_t{8} << 20;

class StagedBackend final : public Backend {
 public:
  // host: the collectives' host-memory backend (owned; its own
  // communicators); p2p_host: the backend point-to-point goes through (not
  // owned, outlives this; nullptr: host); rank / size: this process in the
  // group; chunk_bytes: kAutoChunk or a fixed size; device_reduce_min_bytes:
  // the smallest reduce-scatter block reduced on the device (0: all).
  StagedBackend(std::unique_ptr<Backend> host, int rank, int size,
                std::shared_ptr<CopyEngine> engine, size_t chunk_bytes = kAutoChunk,
                Backend *p2p_host = nullptr, size_t device_reduce_min_bytes = 0);
  ~StagedBackend() override;
  const char *name() const override { return "staged"; }

  void allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *stream) override;
  void reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                      void *stream) override;
  void allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) override;
  void broadcast(void *buf, size_t count, DType t, int root, void *stream) override;
  void gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t,
               int root, void *stream) override;
  void barrier() override;

  void send(const void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  void recv(void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  RequestPtr isend(const void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  RequestPtr irecv(void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  // Staged whole, like recv. reduce, scatterv and alltoallv on CUDA memory
  // are Unsupported (Backend's default).
  int recv_any(void *buf, size_t count, DType t, int tag, void *stream) override;

 private:
  // Elements per chunk of a call moving `count` elements (per block).
  size_t chunk_elems(DType t, size_t count) const;
  void reduce_scatter_on_host(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                              void *stream);
  StagingPool::Buffer staged_copy(const void *device, size_t bytes, void *stream);

  std::unique_ptr<Backend> host_;
  Backend *p2p_;  // host_ or the group's host backend
  int rank_, size_;
  std::shared_ptr<CopyEngine> engine_;
  size_t chunk_bytes_, device_reduce_min_bytes_;
  StagingPool pool_;  // after engine_: returns its buffers to it
};

}  // namespace smp::comm::staged
