// Exchange over a comm::Communicator (normally WORLD): checkpoints move
// bytes with its gatherv and broadcast.
#pragma once

#include "ckpt/exchange.h"
#include "comm/communicator.h"
#include "topo/layout.h"

namespace smp::ckpt {

class CommExchange final : public Exchange {
 public:
  CommExchange(comm::Communicator &c, const topo::Layout *layout) : c_(c), layout_(layout) {}
  int rank() const override { return c_.rank(); }
  int size() const override { return c_.size(); }
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override;
  void broadcast(void *buf, size_t n, int root) override;
  void barrier() override { c_.barrier(); }
  std::string describe() const override;

 private:
  comm::Communicator &c_;
  const topo::Layout *layout_;
};

}  // namespace smp::ckpt
