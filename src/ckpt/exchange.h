// The few collectives a checkpoint needs, as an interface: the production
// implementation forwards to a comm::Communicator (comm_exchange.h); a
// one-process implementation lets the pure save/load logic, the atomicity
// tests and the kill tests run without MPI.
#pragma once

#include <cstddef>
#include <exception>
#include <string>
#include <vector>

namespace smp::ckpt {

class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // root's recv gets every rank's n bytes, concatenated in rank order;
  // counts (root only) holds every rank's n.
  virtual void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) = 0;
  virtual void broadcast(void *buf, size_t n, int root) = 0;
  virtual void barrier() = 0;
  // The job's topology in words, for the manifest ("pp=2 tp=2 rdp=2").
  virtual std::string describe() const { return "size=" + std::to_string(size()); }
};

class SelfExchange final : public Exchange {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override;
  void broadcast(void *, size_t, int) override {}
  void barrier() override {}
};

// Every rank's string, in rank order, on every rank.
std::vector<std::string> allgather_strings(Exchange &ex, const std::string &mine);
// root's string on every rank.
std::string broadcast_string(Exchange &ex, const std::string &s, int root);

// Collective: every rank passes its own outcome of a phase (nullptr for
// success). If any rank failed, every rank throws the same smp::Error: the
// lowest failing rank's status and message. Keeps ranks in step so that
// one rank's I/O error never leaves the others waiting in a collective.
void agree(Exchange &ex, const std::exception_ptr &local);

}  // namespace smp::ckpt
