// The engine that moves one memory type's buffers within one group. One
// folder per backend with the same file shape: mpi/mpi_backend.{h,cc} (host
// memory) here; the CUDA issue adds nccl/ and staged/. Arguments arrive
// validated by Communicator (counts fit, pointers non-null where count > 0,
// peers and roots in range), so a backend only moves and reduces data.
#pragma once

#include <cstddef>
#include <string>

#include "common/dtype.h"
#include "common/error.h"
#include "comm/reduce_op.h"
#include "comm/request.h"

namespace smp::comm {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char *name() const = 0;

  // Blocking collectives, semantics and in-place rules as in smp.h.
  virtual void allreduce(const void *send, void *recv, size_t count, DType dtype, ReduceOp op,
                         void *stream) = 0;
  virtual void reduce_scatter(const void *send, void *recv, size_t recvcount, DType dtype,
                              ReduceOp op, void *stream) = 0;
  virtual void allgather(const void *send, void *recv, size_t sendcount, DType dtype,
                         void *stream) = 0;
  virtual void broadcast(void *buf, size_t count, DType dtype, int root, void *stream) = 0;
  virtual void gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts,
                       DType dtype, int root, void *stream) = 0;
  virtual void barrier() = 0;
  // Later additions, with a default for the backends that do not serve
  // them (the CUDA memory ones): Status::Unsupported, naming the call.
  // reduce: recv is read on root only; send == recv on root is in place.
  virtual void reduce(const void *send, void *recv, size_t count, DType dtype, ReduceOp op, int root,
                      void *stream) {
    (void)send, (void)recv, (void)count, (void)dtype, (void)op, (void)root, (void)stream;
    unsupported("reduce");
  }
  // scatterv: send and sendcounts are read on root only.
  virtual void scatterv(const void *send, const size_t *sendcounts, void *recv, size_t recvcount,
                        DType dtype, int root, void *stream) {
    (void)send, (void)sendcounts, (void)recv, (void)recvcount, (void)dtype, (void)root, (void)stream;
    unsupported("scatterv");
  }
  // alltoallv: counts and displacements in elements, one per group rank.
  virtual void alltoallv(const void *send, const size_t *sendcounts, const size_t *sdispls, void *recv,
                         const size_t *recvcounts, const size_t *rdispls, DType dtype, void *stream) {
    (void)send, (void)sendcounts, (void)sdispls, (void)recv, (void)recvcounts, (void)rdispls,
        (void)dtype, (void)stream;
    unsupported("alltoallv");
  }
  // allgatherv: recvcounts (one per group rank, the same on every rank) in
  // elements; send == recv + (sum of recvcounts before this rank) is in place.
  virtual void allgatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts,
                          DType dtype, void *stream) {
    (void)send, (void)sendcount, (void)recv, (void)recvcounts, (void)dtype, (void)stream;
    unsupported("allgatherv");
  }

  // Point-to-point; peers are ranks within the group.
  virtual void send(const void *buf, size_t count, DType dtype, int peer, int tag, void *stream) = 0;
  virtual void recv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream) = 0;
  virtual RequestPtr isend(const void *buf, size_t count, DType dtype, int peer, int tag,
                           void *stream) = 0;
  virtual RequestPtr irecv(void *buf, size_t count, DType dtype, int peer, int tag,
                           void *stream) = 0;
  // recv from whichever peer sends first with this tag; returns its rank.
  virtual int recv_any(void *buf, size_t count, DType dtype, int tag, void *stream) {
    (void)buf, (void)count, (void)dtype, (void)tag, (void)stream;
    unsupported("recv_any");
  }

 protected:
  [[noreturn]] void unsupported(const char *op) const {
    fail(Status::Unsupported, std::string(op) + ": CUDA memory is not supported by this operation (the " +
                                  name() + " backend); pass host memory");
  }
};

}  // namespace smp::comm
