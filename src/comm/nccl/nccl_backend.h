// CUDA memory over NCCL: collectives enqueued on the caller's stream, on one
// NCCL communicator per group created by the group's first device
// collective (nccl_comm.h). The group's staged backend serves whatever NCCL
// does not: every call when the group declined NCCL (two ranks on one GPU,
// NCCL failing to start), point-to-point (smp's tags order messages per
// (peer, tag); NCCL matches by order alone), and integer AVG.
//
// Each call makes its buffers' device current for its duration (the
// non-blocking worker thread starts on device 0), so the communicator is
// created on, and enqueues to, the device the buffers live on.
//
// Health: before each operation the communicator's asynchronous error is
// polled, and a watch thread follows every enqueued operation (an event on
// its stream): an asynchronous error, or an operation still pending after
// the hang timeout, aborts the communicator (ncclCommAbort, which also
// unblocks the stream) and prints one line; every later call on the group
// throws that error instead of enqueuing work that could never finish.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "comm/bootstrap.h"
#include "comm/layered_backend.h"
#include "comm/nccl/nccl_api.h"
#include "comm/nccl/nccl_comm.h"

namespace smp::comm::nccl {

class NcclBackend final : public LayeredBackend {
 public:
  // boot: the group's control plane, which creates the NCCL communicator
  // (owned). staged: the group's staged backend (owned). timeout_seconds
  // <= 0: no hang timeout (asynchronous errors are still watched).
  NcclBackend(std::unique_ptr<Bootstrap> boot, std::unique_ptr<Backend> staged, double timeout_seconds,
              std::unique_ptr<NcclApi> api, int world_rank);
  ~NcclBackend() override;
  const char *name() const override { return "nccl"; }

  void allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *stream) override;
  void reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                      void *stream) override;
  void allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) override;
  void broadcast(void *buf, size_t count, DType t, int root, void *stream) override;
  // ncclReduce; where NCCL declines, the layers below (Unsupported).
  void reduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, int root,
              void *stream) override;
  void gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t,
               int root, void *stream) override;

 private:
  // The NCCL communicator, or nullptr to take the staged path (creates it
  // on first use; checks its health).
  void *comm(const char *what);
  // After an NCCL call: waits out ncclInProgress, turns errors into
  // smp::Error, hands the operation to the watch thread.
  void enqueued(int rc, const char *what, void *stream);
  void watch_loop();

  std::unique_ptr<NcclApi> api_;
  std::unique_ptr<Bootstrap> boot_;
  double timeout_;
  int world_rank_;
  NcclComm nccl_;
  std::string refusal_note_;  // printed once when the group declined NCCL

  struct Pending {
    void *event;  // cudaEvent_t recorded after the operation
    double start;  // seconds on the steady clock
    std::string what;
  };
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  std::deque<Pending> pending_;
  bool stop_ = false;
  std::thread watch_;  // started with the communicator
};

}  // namespace smp::comm::nccl
