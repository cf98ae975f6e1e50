// A Bootstrap over a group's MPI communicator (a duplicate, so setup
// messages never match the program's). Errors throw smp::Error(Backend).
#pragma once

#include <mpi.h>

#include "comm/bootstrap.h"

namespace smp::comm::mpi {

class MpiBootstrap final : public Bootstrap {
 public:
  // what: names the user in error messages ("nccl bootstrap").
  MpiBootstrap(MPI_Comm group_comm, const char *what);
  ~MpiBootstrap() override;
  MpiBootstrap(const MpiBootstrap &) = delete;
  MpiBootstrap &operator=(const MpiBootstrap &) = delete;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void broadcast(void *bytes, size_t n, int root) override;
  std::vector<std::string> allgatherv(const std::string &mine) override;
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override;
  int all_min(int v) override;
  void barrier() override;

 private:
  void check(int rc, const char *call) const;
  // n as MPI's int count; throws smp::Error(Backend) past INT_MAX.
  int count(size_t n, const char *call) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  const char *what_;
};

}  // namespace smp::comm::mpi
