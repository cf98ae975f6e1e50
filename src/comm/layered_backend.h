// A backend stacked on another: it serves what it can and passes every
// other call, unchanged, to the backend below (NCCL over IPC over staged).
// Each operation forwards by default; a layer overrides the ones it serves
// and calls below() where it declines.
#pragma once

#include <memory>
#include <utility>

#include "comm/backend.h"

namespace smp::comm {

class LayeredBackend : public Backend {
 public:
  explicit LayeredBackend(std::unique_ptr<Backend> below) : below_(std::move(below)) {}

  void allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *stream) override {
    below_->allreduce(send, recv, count, t, op, stream);
  }
  void reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                      void *stream) override {
    below_->reduce_scatter(send, recv, recvcount, t, op, stream);
  }
  void allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) override {
    below_->allgather(send, recv, sendcount, t, stream);
  }
  void broadcast(void *buf, size_t count, DType t, int root, void *stream) override {
    below_->broadcast(buf, count, t, root, stream);
  }
  void gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t, int root,
               void *stream) override {
    below_->gatherv(send, sendcount, recv, recvcounts, t, root, stream);
  }
  void barrier() override { below_->barrier(); }
  void reduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, int root,
              void *stream) override {
    below_->reduce(send, recv, count, t, op, root, stream);
  }
  void scatterv(const void *send, const size_t *sendcounts, void *recv, size_t recvcount, DType t, int root,
                void *stream) override {
    below_->scatterv(send, sendcounts, recv, recvcount, t, root, stream);
  }
  void alltoallv(const void *send, const size_t *sendcounts, const size_t *sdispls, void *recv,
                 const size_t *recvcounts, const size_t *rdispls, DType t, void *stream) override {
    below_->alltoallv(send, sendcounts, sdispls, recv, recvcounts, rdispls, t, stream);
  }

  void allgatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t,
                  void *stream) override {
    below_->allgatherv(send, sendcount, recv, recvcounts, t, stream);
  }

  void send(const void *buf, size_t count, DType t, int peer, int tag, void *stream) override {
    below_->send(buf, count, t, peer, tag, stream);
  }
  void recv(void *buf, size_t count, DType t, int peer, int tag, void *stream) override {
    below_->recv(buf, count, t, peer, tag, stream);
  }
  RequestPtr isend(const void *buf, size_t count, DType t, int peer, int tag, void *stream) override {
    return below_->isend(buf, count, t, peer, tag, stream);
  }
  RequestPtr irecv(void *buf, size_t count, DType t, int peer, int tag, void *stream) override {
    return below_->irecv(buf, count, t, peer, tag, stream);
  }
  int recv_any(void *buf, size_t count, DType t, int tag, void *stream) override {
    return below_->recv_any(buf, count, t, tag, stream);
  }

 protected:
  Backend &below() { return *below_; }

 private:
  std::unique_ptr<Backend> below_;
};

}  // namespace smp::comm
