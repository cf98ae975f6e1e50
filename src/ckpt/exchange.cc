#include "ckpt/exchange.h"

#include <cstdint>
#include <cstring>

#include "common/error.h"

namespace smp::ckpt {

void SelfExchange::gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) {
  if (root != 0 || counts[0] != n) throw Error(Status::Internal, "SelfExchange::gatherv: bad root or count");
  if (n) std::memmove(recv, send, n);
}

std::vector<std::string> allgather_strings(Exchange &ex, const std::string &mine) {
  const int p = ex.size();
  // Sizes first, so the root can size its buffer; then the bytes.
  uint64_t len = mine.size();
  std::vector<uint64_t> lens(static_cast<size_t>(p));
  std::vector<size_t> eights(static_cast<size_t>(p), sizeof(uint64_t));
  ex.gatherv(&len, sizeof len, lens.data(), eights.data(), 0);
  ex.broadcast(lens.data(), lens.size() * sizeof(uint64_t), 0);
  std::vector<size_t> counts(lens.begin(), lens.end());
  size_t total = 0;
  for (size_t c : counts) total += c;
  std::string all(total, '\0');
  char dummy = 0;
  ex.gatherv(mine.empty() ? &dummy : mine.data(), mine.size(), total ? all.data() : &dummy, counts.data(), 0);
  if (total) ex.broadcast(all.data(), total, 0);
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t c : counts) {
    out.push_back(all.substr(pos, c));
    pos += c;
  }
  return out;
}

std::string broadcast_string(Exchange &ex, const std::string &s, int root) {
  uint64_t len = s.size();
  ex.broadcast(&len, sizeof len, root);
  std::string out = ex.rank() == root ? s : std::string(static_cast<size_t>(len), '\0');
  if (len) ex.broadcast(out.data(), out.size(), root);
  return out;
}

void agree(Exchange &ex, const std::exception_ptr &local) {
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
  const auto all = allgather_strings(ex, mine);
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].empty()) continue;
    const size_t sp = all[r].find(' ');
    const int st = std::atoi(all[r].substr(0, sp).c_str());
    const std::string msg = all[r].substr(sp + 1);
    if (static_cast<int>(r) == ex.rank()) std::rethrow_exception(local);
    throw Error(static_cast<Status>(st), "rank " + std::to_string(r) + ": " + msg);
  }
}

}  // namespace smp::ckpt
