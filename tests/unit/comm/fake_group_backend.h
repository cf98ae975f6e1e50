// A host Backend standing in for "rank `rank` of a group of `size`" in the
// staged backend's unit tests. Each collective is a fixed, easily
// recomputed function of its input (every block of it, for reduce-scatter),
// so a test can compute what the staged backend must leave in "device"
// memory from the whole buffers alone; messages to and from peers are
// streams (consumed / appended in order), so chunk order is checked too.
// Every call is appended to the shared trace as "xfer <op> <count>".
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "comm/backend.h"

namespace smp::comm::staged::testing {

// Tests use I64 elements (exact arithmetic); the staged backend only moves
// bytes, so the element type matters to it only through its size.
class FakeGroupBackend final : public Backend {
 public:
  FakeGroupBackend(int rank, int size, std::function<void(const std::string &)> trace)
      : rank_(rank), size_(size), trace_(std::move(trace)) {}
  const char *name() const override { return "fake"; }

  // allreduce: recv[i] = 3 * send[i] + 1
  void allreduce(const void *send, void *recv, size_t n, DType t, ReduceOp, void *) override {
    note("allreduce", n, t);
    std::vector<int64_t> x = get(send, n);
    for (auto &v : x) v = 3 * v + 1;
    put(recv, x);
  }
  // reduce_scatter: recv[i] = sum_b (b + 1) * send[b*n + i]
  void reduce_scatter(const void *send, void *recv, size_t n, DType t, ReduceOp, void *) override {
    note("reduce_scatter", n, t);
    std::vector<int64_t> x = get(send, n * size_), y(n, 0);
    for (int b = 0; b < size_; ++b)
      for (size_t i = 0; i < n; ++i) y[i] += (b + 1) * x[b * n + i];
    put(recv, y);
  }
  // allgather: recv[b*n + i] = (b + 1) * send[i] + b
  void allgather(const void *send, void *recv, size_t n, DType t, void *) override {
    note("allgather", n, t);
    std::vector<int64_t> x = get(send, n), y(n * size_);
    for (int b = 0; b < size_; ++b)
      for (size_t i = 0; i < n; ++i) y[b * n + i] = (b + 1) * x[i] + b;
    put(recv, y);
  }
  // broadcast: root's chunks are appended to `sent[{root, -1}]`; the others
  // take theirs from `inbox[{root, -1}]`.
  void broadcast(void *buf, size_t n, DType t, int root, void *) override {
    note("broadcast", n, t);
    if (rank_ == root) append(sent[{root, -1}], buf, n);
    else take(inbox[{root, -1}], buf, n);
  }
  // gatherv: non-root appends to sent[{root, -2}]; root fills rank r's part
  // from inbox[{r, -2}] and its own from send.
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, DType t, int root,
               void *) override {
    note("gatherv", n, t);
    if (rank_ != root) return append(sent[{root, -2}], send, n);
    char *out = static_cast<char *>(recv);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) std::memcpy(out, send, n * 8);
      else take(inbox[{r, -2}], out, counts[r]);
      out += counts[r] * 8;
    }
  }
  void barrier() override { note("barrier", 0, DType::I64); }
  void send(const void *buf, size_t n, DType t, int peer, int tag, void *) override {
    note("send", n, t);
    append(sent[{peer, tag}], buf, n);
  }
  void recv(void *buf, size_t n, DType t, int peer, int tag, void *) override {
    note("recv", n, t);
    take(inbox[{peer, tag}], buf, n);
  }
  // Complete at once (the staged request's own logic is what is tested).
  RequestPtr isend(const void *buf, size_t n, DType t, int peer, int tag, void *s) override {
    send(buf, n, t, peer, tag, s);
    return std::make_unique<Done>();
  }
  RequestPtr irecv(void *buf, size_t n, DType t, int peer, int tag, void *s) override {
    recv(buf, n, t, peer, tag, s);
    return std::make_unique<Done>();
  }

  std::map<std::pair<int, int>, std::vector<int64_t>> sent, inbox;  // (peer, tag) -> stream

 private:
  struct Done final : Request {
    void wait() override {}
    bool test() override { return true; }
  };
  void note(const char *op, size_t n, DType t) {
    if (t != DType::I64) throw std::logic_error("FakeGroupBackend takes I64 only");
    if (trace_) trace_(std::string("xfer ") + op + " " + std::to_string(n));
  }
  static std::vector<int64_t> get(const void *p, size_t n) {
    std::vector<int64_t> v(n);
    if (n) std::memcpy(v.data(), p, n * 8);
    return v;
  }
  static void put(void *p, const std::vector<int64_t> &v) {
    if (!v.empty()) std::memcpy(p, v.data(), v.size() * 8);
  }
  static void append(std::vector<int64_t> &s, const void *p, size_t n) {
    const auto v = get(p, n);
    s.insert(s.end(), v.begin(), v.end());
  }
  static void take(std::vector<int64_t> &s, void *p, size_t n) {
    if (s.size() < n) throw std::logic_error("FakeGroupBackend: inbox ran dry");
    if (n > 0) std::memcpy(p, s.data(), n * 8);  // p may be NULL when n is 0
    s.erase(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
  }

  int rank_, size_;
  std::function<void(const std::string &)> trace_;
};

}  // namespace smp::comm::staged::testing
