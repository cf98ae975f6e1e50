#include "comm/bootstrap.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/error.h"

namespace smp::comm {

void SelfBootstrap::gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) {
  if (root != 0 || counts[0] != n) throw Error(Status::Internal, "SelfBootstrap::gatherv: bad root or count");
  if (n) std::memmove(recv, send, n);
}

std::string broadcast_string(Bootstrap &b, const std::string &s, int root) {
  uint64_t len = s.size();
  b.broadcast(&len, sizeof len, root);
  std::string out = b.rank() == root ? s : std::string(static_cast<size_t>(len), '\0');
  if (len) b.broadcast(out.data(), out.size(), root);
  return out;
}

void agree(Bootstrap &b, const std::exception_ptr &local) {
  std::string mine;  // "" = success, else "<status> <message>"
  if (local) {
    try {
      std::rethrow_exception(local);
    } catch (const Error &e) {
      mine = std::to_string(static_cast<int>(e.status())) + " " + e.what();
    } catch (const std::bad_alloc &) {
      mine = std::to_string(static_cast<int>(Status::Backend)) + " out of memory";
    } catch (const std::exception &e) {
      mine = std::to_string(static_cast<int>(Status::Internal)) + " " + e.what();
    }
  }
  const auto all = b.allgatherv(mine);
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty()) continue;
    const size_t sp = all[r].find(' ');
    const int st = std::atoi(all[r].substr(0, sp).c_str());
    const std::string msg = all[r].substr(sp + 1);
    if (static_cast<int>(r) == b.rank()) std::rethrow_exception(local);
    throw Error(static_cast<Status>(st), "rank " + std::to_string(r) + ": " + msg);
  }
}

}  // namespace smp::comm
