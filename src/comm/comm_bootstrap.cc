#include "comm/comm_bootstrap.h"

#include <cstdint>

namespace smp::comm {

namespace {
// The Communicator refuses null buffers, even of zero bytes (and
// std::string::data() of an empty string may be anything).
char g_dummy = 0;
}  // namespace

void CommBootstrap::broadcast(void *bytes, size_t n, int root) {
  c_.broadcast(n ? bytes : &g_dummy, n, DType::U8, root);
}

void CommBootstrap::gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) {
  c_.gatherv(n ? send : &g_dummy, n, recv ? recv : &g_dummy, counts, DType::U8, root);
}

// Lengths by allgather, then the bytes in one allgatherv.
std::vector<std::string> CommBootstrap::allgatherv(const std::string &mine) {
  int64_t len = static_cast<int64_t>(mine.size());
  std::vector<int64_t> lens(static_cast<size_t>(size()));
  c_.allgather(&len, lens.data(), 1, DType::I64);
  std::vector<size_t> counts(lens.begin(), lens.end());
  size_t total = 0;
  for (size_t c : counts) total += c;
  std::string all(total, '\0');
  if (total)  // every member knows total: all skip together
    c_.allgatherv(mine.empty() ? &g_dummy : mine.data(), mine.size(), all.data(), counts.data(), DType::U8);
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t c : counts) {
    out.push_back(all.substr(pos, c));
    pos += c;
  }
  return out;
}

int CommBootstrap::all_min(int v) {
  int32_t in = v, out = 0;
  c_.allreduce(&in, &out, 1, DType::I32, ReduceOp::Min);
  return out;
}

std::string CommBootstrap::describe() const {
  if (!layout_) return Bootstrap::describe();
  return "size=" + std::to_string(layout_->size()) + " pp=" + std::to_string(layout_->pp_size()) +
         " tp=" + std::to_string(layout_->tp_size()) + " rdp=" + std::to_string(layout_->rdp_size()) +
         " placement=" + layout_->placement().letters();
}

}  // namespace smp::comm
