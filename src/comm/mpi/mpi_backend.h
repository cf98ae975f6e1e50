// Host memory over Open MPI. Native MPI types go straight to MPI's own
// collectives (allreduce, allgather, broadcast: nothing to add, minimal
// overhead); reduce-scatter and every FLOAT16/BFLOAT16 reduction run smp's
// pairwise exchange (pairwise_reduce_scatter.h). size_t counts beyond MPI's
// int are cut into chunks of at most max_chunk elements. allgatherv is
// MPI_Allgatherv while the whole result fits one chunk (every rank knows
// every count, so all take the same path), else one chunked broadcast per
// rank's block. gatherv, scatterv
// and alltoallv run over point-to-point (their per-rank counts and offsets
// are size_t, which MPI's v-collectives cannot take, and every rank must
// choose the same path knowing only its own counts).
#pragma once

#include <mpi.h>

#include <cstddef>

#include "comm/backend.h"

namespace smp::comm::mpi {

class MpiBackend final : public Backend {
 public:
  // Duplicates group_comm twice (collectives; point-to-point) with
  // MPI_ERRORS_RETURN, so MPI failures become smp::Error. The caller keeps
  // group_comm.
  MpiBackend(MPI_Comm group_comm, size_t max_chunk);
  ~MpiBackend() override;
  const char *name() const override { return "mpi"; }

  void allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *stream) override;
  void reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                      void *stream) override;
  void allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) override;
  void broadcast(void *buf, size_t count, DType t, int root, void *stream) override;
  void gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t,
               int root, void *stream) override;
  void barrier() override;
  void reduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, int root,
              void *stream) override;
  void scatterv(const void *send, const size_t *sendcounts, void *recv, size_t recvcount, DType t,
                int root, void *stream) override;
  void alltoallv(const void *send, const size_t *sendcounts, const size_t *sdispls, void *recv,
                 const size_t *recvcounts, const size_t *rdispls, DType t, void *stream) override;
  void allgatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t,
                  void *stream) override;

  void send(const void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  void recv(void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  RequestPtr isend(const void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  RequestPtr irecv(void *buf, size_t count, DType t, int peer, int tag, void *stream) override;
  int recv_any(void *buf, size_t count, DType t, int tag, void *stream) override;

 private:
  void own_allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op);
  void own_reduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, int root);

  MPI_Comm coll_ = MPI_COMM_NULL;  // collectives and their internal messages
  MPI_Comm p2p_ = MPI_COMM_NULL;   // the program's send / recv
  int rank_ = 0, size_ = 1;
  size_t max_chunk_;
};

}  // namespace smp::comm::mpi
