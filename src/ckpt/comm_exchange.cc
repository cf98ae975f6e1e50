#include "ckpt/comm_exchange.h"

namespace smp::ckpt {

void CommExchange::gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) {
  c_.gatherv(send, n, recv, counts, DType::U8, root);
}

void CommExchange::broadcast(void *buf, size_t n, int root) { c_.broadcast(buf, n, DType::U8, root); }

std::string CommExchange::describe() const {
  if (!layout_) return Exchange::describe();
  return "size=" + std::to_string(layout_->size()) + " pp=" + std::to_string(layout_->pp_size()) +
         " tp=" + std::to_string(layout_->tp_size()) + " rdp=" + std::to_string(layout_->rdp_size()) +
         " placement=" + layout_->placement().letters();
}

}  // namespace smp::ckpt
