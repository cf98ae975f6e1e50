// A group's control plane: how its members agree on setting up a backend
// (NCCL communicator creation, CUDA IPC segments) and exchange the small
// metadata of a checkpoint. Versions: mpi/mpi_bootstrap.h (a group's own
// MPI communicator, so only its members take part), comm_bootstrap.h (a
// Communicator), SelfBootstrap below (one process), and threads in the unit
// tests (tests/unit/comm/thread_bootstrap.h).
#pragma once

#include <cstddef>
#include <exception>
#include <string>
#include <vector>

namespace smp::comm {

class Bootstrap {
 public:
  virtual ~Bootstrap() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // root's bytes to every member.
  virtual void broadcast(void *bytes, size_t n, int root) = 0;
  // Every member's bytes (any length, binary-safe), in rank order, on every member.
  virtual std::vector<std::string> allgatherv(const std::string &mine) = 0;
  // root's recv gets every member's n bytes concatenated in rank order;
  // counts (read on root only) holds every member's n.
  virtual void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) = 0;
  // Minimum of every member's value.
  virtual int all_min(int v) = 0;
  // Returns once every member has called it.
  virtual void barrier() = 0;
  // The job's topology in words, for manifests ("pp=2 tp=2 rdp=2").
  virtual std::string describe() const { return "size=" + std::to_string(size()); }
};

// root's string on every member.
std::string broadcast_string(Bootstrap &b, const std::string &s, int root);

// Collective: every member passes its own outcome of a phase (nullptr for
// success). If any failed, every member throws the same smp::Error: the
// lowest failing rank's status and message. Keeps members in step, so that
// one member's I/O error never leaves the others waiting in a collective.
void agree(Bootstrap &b, const std::exception_ptr &local);

// One process (tests, single-rank paths): every collective is local.
class SelfBootstrap final : public Bootstrap {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void broadcast(void *, size_t, int) override {}
  std::vector<std::string> allgatherv(const std::string &mine) override { return {mine}; }
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override;
  int all_min(int v) override { return v; }
  void barrier() override {}
};

}  // namespace smp::comm
