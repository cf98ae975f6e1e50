// One process group (WORLD, PP, TP, ..., or one created at run time:
// comm/groups.h) of the initialized world: its ranks, and every collective
// and point-to-point operation on it.
//
// Every call validates its arguments first and throws smp::Error
// (Status::InvalidArgument, the message naming the argument) before any
// communication. Peers and roots are ranks within the group. `stream` comes
// last: ignored for host memory (the call completes before it returns), a
// cudaStream_t for CUDA memory once that backend exists. The backend is
// chosen per call from the memory type of the buffers.
//
// Non-blocking collectives run, in issue order, on a worker thread of this
// communicator that owns its own duplicate of the group's MPI communicator:
// they complete without the caller polling, and stay matched across ranks
// as long as every rank issues them in the same order. Blocking
// collectives, point-to-point and non-blocking collectives use separate
// MPI communicators, so they never match one another by accident.
//
// Threads: any method may be called from any thread; collectives on one
// group issued concurrently from several threads must be ordered by the
// program (as with MPI), point-to-point needs no such care.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "comm/backend.h"
#include "comm/memtype.h"
#include "comm/reduce_op.h"
#include "comm/request.h"
#include "topo/layout.h"

namespace smp::comm {

class AsyncWorker;  // comm/async_worker.h
class CallChecker;  // comm/call_checker.h
struct CallDesc;   // comm/check.h
struct Call;       // comm/call.h
struct CallExtent; // comm/call.h
struct OpInfo;     // comm/watchdog.h

// What a communicator needs to know about the world it lives in.
struct CommSettings {
  int world_rank = 0;
  bool check = false;      // SMP_CHECK: verify collective arguments across the group
  CallChecker *checker = nullptr;  // with check: compares blocking collectives world-wide
                                   // (outlives the communicators); null: over the group
  int max_tag = 32767;     // largest valid tag (MPI_TAG_UB)
  bool async_thread = true;  // MPI_THREAD_MULTIPLE: run non-blocking collectives on a
                             // worker thread (else they run at issue)
};

class Communicator {
 public:
  // members: the group's world ranks (sorted for the layout's groups, in
  // the creator's order for a created one, registered in comm/groups.h
  // before this is made); rank: this process's index in it. host / host_async: backends for host memory on two independent
  // duplicates of the group communicator (blocking+p2p, non-blocking).
  Communicator(topo::Group group, std::vector<int> members, int rank, CommSettings settings,
               std::unique_ptr<Backend> host, std::unique_ptr<Backend> host_async);
  ~Communicator();  // drains the non-blocking queue
  // Backends for CUDA memory (comm/staged/device_backend.h), same pairing as
  // host / host_async; without them CUDA buffers are Unsupported.
  void set_device_backends(std::unique_ptr<Backend> device, std::unique_ptr<Backend> device_async);
  Communicator(const Communicator &) = delete;
  Communicator &operator=(const Communicator &) = delete;

  int rank() const { return rank_; }
  int size() const { return static_cast<int>(members_.size()); }
  topo::Group group() const { return group_; }
  // "TP_GROUP", or a created group's "group 64 (world ranks 0,2,3)";
  // valid for the life of the process.
  const char *group_name() const { return name_; }
  const std::vector<int> &members() const { return members_; }
  // Hang timeout of this group's operations in seconds (0: none), in place
  // of SMP_TIMEOUT; < 0 (the default): SMP_TIMEOUT's.
  void set_timeout(double seconds) { timeout_.store(seconds, std::memory_order_relaxed); }
  double timeout() const { return timeout_.load(std::memory_order_relaxed); }
  // World rank of the group's rank r.
  int world_rank_of(int r) const { return members_.at(static_cast<size_t>(r)); }

  // Blocking collectives (semantics and in-place rules as in smp.h).
  void allreduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype, ReduceOp op,
                 void *stream = nullptr);
  void reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount, DType dtype,
                      ReduceOp op, void *stream = nullptr);
  void allgather(const void *sendbuf, void *recvbuf, size_t sendcount, DType dtype,
                 void *stream = nullptr);
  void broadcast(void *buf, size_t count, DType dtype, int root, void *stream = nullptr);
  // recvbuf / recvcounts are read on root only (recvcounts[r] == rank r's sendcount).
  void gatherv(const void *sendbuf, size_t sendcount, void *recvbuf, const size_t *recvcounts,
               DType dtype, int root, void *stream = nullptr);
  void barrier();
  // recvcounts[r] == rank r's sendcount, the same list on every rank; the
  // blocks land in rank order. sendbuf == recvbuf + (the sum of recvcounts
  // before this rank) is in place.
  void allgatherv(const void *sendbuf, size_t sendcount, void *recvbuf, const size_t *recvcounts,
                  DType dtype, void *stream = nullptr);
  // recvbuf is read on root only (sendbuf == recvbuf there: in place).
  void reduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype, ReduceOp op, int root,
              void *stream = nullptr);
  // sendbuf / sendcounts are read on root only (sendcounts[r] == rank r's
  // recvcount); recvbuf may be root's own block of sendbuf (in place).
  void scatterv(const void *sendbuf, const size_t *sendcounts, void *recvbuf, size_t recvcount,
                DType dtype, int root, void *stream = nullptr);
  // Counts and displacements in elements, one per group rank; the send and
  // receive regions must not overlap.
  void alltoallv(const void *sendbuf, const size_t *sendcounts, const size_t *sdispls, void *recvbuf,
                 const size_t *recvcounts, const size_t *rdispls, DType dtype, void *stream = nullptr);

  // Point-to-point; tag >= 0. Same pair + tag: delivered in send order.
  void send(const void *buf, size_t count, DType dtype, int peer, int tag, void *stream = nullptr);
  void recv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream = nullptr);
  // recv from whichever rank sends first with this tag; returns its rank.
  int recv_any(void *buf, size_t count, DType dtype, int tag, void *stream = nullptr);

  // Non-blocking twins: buffers stay untouched by the caller until the
  // request completes.
  RequestPtr isend(const void *buf, size_t count, DType dtype, int peer, int tag,
                   void *stream = nullptr);
  RequestPtr irecv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream = nullptr);
  RequestPtr iallreduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype, ReduceOp op,
                        void *stream = nullptr);
  RequestPtr ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount, DType dtype,
                             ReduceOp op, void *stream = nullptr);
  RequestPtr iallgather(const void *sendbuf, void *recvbuf, size_t sendcount, DType dtype,
                        void *stream = nullptr);

 private:
  // The one path of every operation (comm/call.h): validate, look up the
  // memory type once, pick the backend, then run it here (execute) or on
  // the worker thread. Returns the request of a non-blocking operation,
  // else null; *source: recv_any's sender.
  RequestPtr run(const Call &c, int *source = nullptr);
  // Under the watchdog, verified under SMP_CHECK, then performed.
  void execute(Backend &b, MemType m, const Call &c, size_t count, int *source);
  MemType memtype(const char *what, const CallExtent &x) const;
  Backend &backend(const char *what, MemType m, bool async);
  AsyncWorker &worker();
  // SMP_CHECK: compare this call with every other rank's (throws
  // PeerFailed), over the host backend of the call's kind (the descriptors
  // are host memory); the v-collectives then compare their counts.
  void verify(MemType m, const Call &c, size_t count);
  void verify_gatherv(Backend &b, const std::vector<CallDesc> &all, const Call &c);
  void verify_scatterv(Backend &b, const std::vector<CallDesc> &all, const Call &c);
  void verify_alltoallv(Backend &b, const size_t *sendcounts, const size_t *recvcounts);
  void verify_allgatherv(Backend &b, const std::vector<CallDesc> &all, const size_t *recvcounts);
  // What the watchdog shows while an operation waits.
  OpInfo op_info(const char *op, const Call &c, size_t count) const;

  topo::Group group_;
  const char *name_;
  std::vector<int> members_;
  std::atomic<double> timeout_{-1};
  int64_t members_hash_;  // members_hash(members_), sent with every checked call
  int rank_;
  CommSettings settings_;
  std::unique_ptr<Backend> host_, host_async_;
  std::unique_ptr<Backend> device_, device_async_;  // CUDA memory; null without CUDA
  std::once_flag worker_once_;
  std::unique_ptr<AsyncWorker> worker_;  // started on the first non-blocking collective
};

}  // namespace smp::comm
