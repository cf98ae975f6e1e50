// The engine that moves one memory type's buffers within one group. One
// folder per backend with the same file shape: mpi/mpi_backend.{h,cc} (host
// memory) here; the CUDA issue adds nccl/ and staged/. Arguments arrive
// validated by Communicator (counts fit, pointers non-null where count > 0,
// peers and roots in range), so a backend only moves and reduces data.
#pragma once

#include <cstddef>

#include "common/dtype.h"
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

  // Point-to-point; peers are ranks within the group.
  virtual void send(const void *buf, size_t count, DType dtype, int peer, int tag, void *stream) = 0;
  virtual void recv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream) = 0;
  virtual RequestPtr isend(const void *buf, size_t count, DType dtype, int peer, int tag,
                           void *stream) = 0;
  virtual RequestPtr irecv(void *buf, size_t count, DType dtype, int peer, int tag,
                           void *stream) = 0;
};

}  // namespace smp::comm
