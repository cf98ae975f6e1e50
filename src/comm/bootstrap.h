// How a group's members agree on setting up a backend (NCCL communicator
// creation, CUDA IPC segments): over the group's own host communicator
// (mpi/mpi_bootstrap.h in the library, threads in the unit tests), so only
// the group's members take part.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace smp::comm {

class Bootstrap {
 public:
  virtual ~Bootstrap() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // bytes from `root` to every member.
  virtual void broadcast(void *bytes, size_t n, int root) = 0;
  // Every member's bytes (any length, binary-safe), in rank order.
  virtual std::vector<std::string> allgather(const std::string &mine) = 0;
  // Minimum of every member's value.
  virtual int all_min(int v) = 0;
  // Returns once every member has called it.
  virtual void barrier() = 0;
};

}  // namespace smp::comm
