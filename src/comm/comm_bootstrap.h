// A Bootstrap over a Communicator (normally WORLD): checkpoints exchange
// their metadata and agree on each phase's outcome through it, so their
// messages follow the group's ordering, timeout and SMP_CHECK like any call.
#pragma once

#include <string>
#include <vector>

#include "comm/bootstrap.h"
#include "comm/communicator.h"
#include "topo/layout.h"

namespace smp::comm {

class CommBootstrap final : public Bootstrap {
 public:
  // layout (may be null; not owned): what describe() names.
  explicit CommBootstrap(Communicator &c, const topo::Layout *layout = nullptr) : c_(c), layout_(layout) {}
  int rank() const override { return c_.rank(); }
  int size() const override { return c_.size(); }
  void broadcast(void *bytes, size_t n, int root) override;
  std::vector<std::string> allgatherv(const std::string &mine) override;
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override;
  int all_min(int v) override;
  void barrier() override { c_.barrier(); }
  // "size=8 pp=2 tp=2 rdp=2 placement=DPT" with a layout.
  std::string describe() const override;

 private:
  Communicator &c_;
  const topo::Layout *layout_;
};

}  // namespace smp::comm
