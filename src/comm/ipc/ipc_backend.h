// CUDA memory of ranks that share one GPU, reduced and copied in device
// memory: each rank of the group owns a segment that every other rank has
// mapped (CUDA IPC; segments.h sets them up on the group's first device
// collective), and a collective runs in chunks through them:
//
//   for chunk k, in half k % 2 of every segment:
//     fill  - copy this rank's part of chunk k into its own half;
//     sync  - wait for its stream: the fill is done, and so are this
//             rank's reads of chunk k-2 (the last ones from this half);
//     barrier over the group: every half is filled, nobody reads k-2;
//     read  - reduce / copy chunk k out of the members' halves, enqueued.
//   a last sync and barrier: nobody reads a segment once a call returns.
//
// Nothing crosses the host but the barrier, and the device moves each byte
// at memory speed: a reduce-scatter reads the S blocks a rank owns from S
// segments (one kernel), where the staged path copies the whole input to
// the host and back and reduces on the CPU. An allreduce combines in member
// order (0, 1, ...) on every rank, so all of them hold the same bytes; a
// reduce-scatter in the host reduce-scatter's order (own, rank-1, ...), so
// its bytes equal the host path's.
//
// Everything else goes to `fallback` (the staged backend): point-to-point
// (a CUDA sender must match a host receiver), gatherv, barrier, and every
// call of a group that declined (ranks on different devices, a segment
// that could not be allocated or mapped; printed once per process). A
// backend made with `required` throws instead (on every rank: the decision
// is the group's), so a run that counts on IPC cannot silently fall back.
//
// Calls moving fewer than min_bytes (the call's input; a reduce-scatter's
// whole input, an allgather's output) go to the fallback too. Each chunk
// here costs device steps (a copy, a kernel), and processes that share a
// GPU take turns on it: a step costs ~0.3 ms when every member issues one
// at once, against ~13 us under NVIDIA's MPS, which runs them in one
// context, and the staged path's host copies pay no turns (measured on an
// H200: BENCHMARKS.md). By default (kAutoMinBytes) the group measures that
// on setup (a tiny kernel by every member at once, a few times, the
// slowest member's median): taking turns, calls from kTurnsMinBytes come
// here; not, every call does.
// Every rank of a collective passes the same count and the group agrees
// on min_bytes, so its members decide alike.
//
// Calls are blocking for the host, like the staged path's.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "comm/bootstrap.h"
#include "comm/ipc/segments.h"
#include "comm/ipc/shared_memory.h"
#include "comm/layered_backend.h"

namespace smp::comm::ipc {

// Default bytes of one half of a segment (a segment is two halves); the
// SMP_IPC_CHUNK_BYTES environment variable overrides it (backend_select.cc).
inline constexpr size_t kDefaultChunkBytes = size_t{8} << 20;
// min_bytes meaning "measure on setup"; SMP_IPC_MIN_BYTES fixes a value.
inline constexpr size_t kAutoMinBytes = ~size_t{0};
// The smallest call served here when the members take turns on the GPU.
inline constexpr size_t kTurnsMinBytes = size_t{2} << 20;
// A device step slower than this, with every member issuing one at once,
// means the members take turns (0.28 ms measured on an H200; 13 us under
// MPS, 10 us alone).
inline constexpr int kTurnMicros = 100;
// What kAutoMinBytes becomes for the slowest member's median step time.
inline size_t min_bytes_for_step(int slowest_median_us) {
  return slowest_median_us > kTurnMicros ? kTurnsMinBytes : 0;
}

class IpcBackend final : public LayeredBackend {
 public:
  // boot: the group's members (owned); mem: the shared memory (CUDA IPC,
  // or a test double); fallback: the group's staged backend (owned);
  // chunk_bytes: one half of a segment (at least 8 * kMaxInputs bytes);
  // min_bytes: smaller calls go to the fallback (0: none do;
  // kAutoMinBytes: measured on setup).
  IpcBackend(std::unique_ptr<Bootstrap> boot, std::shared_ptr<SharedMemory> mem,
             std::unique_ptr<Backend> fallback, size_t chunk_bytes, int world_rank, bool required = false,
             size_t min_bytes = 0);
  ~IpcBackend() override;
  const char *name() const override { return "ipc"; }

  // Why the group declined, once it has (empty before the first collective
  // and when it is served).
  const std::string &refusal() const { return refusal_; }
  // The smallest call served here (kAutoMinBytes until the group measured).
  size_t min_bytes() const { return min_bytes_; }

  void allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *stream) override;
  void reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                      void *stream) override;
  void allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) override;
  void broadcast(void *buf, size_t count, DType t, int root, void *stream) override;

 private:
  // True when the group is served (sets it up on first use; collective)
  // and a call moving `bytes` is large enough for this path.
  bool served(const void *probe, size_t bytes, void *stream);
  // The slowest member's median time of one tiny kernel on `stream` with
  // every member issuing one at once, in microseconds (collective).
  int measure_step_us(void *stream);
  const char *half(int member, size_t k) const;  // member's half for chunk k, mapped here
  char *own_half(size_t k) const;                // this rank's half for chunk k
  template <class Fill, class Read>
  void run(size_t nchunks, Fill &&fill, Read &&read, void *stream);

  std::unique_ptr<Bootstrap> boot_;
  std::shared_ptr<SharedMemory> mem_;
  size_t half_bytes_, min_bytes_;
  int world_rank_;
  bool required_;
  int rank_, size_;
  bool tried_ = false;
  std::optional<Segments> segs_;
  std::string refusal_;
};

}  // namespace smp::comm::ipc
