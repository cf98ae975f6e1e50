#include "comm/mpi/mpi_bootstrap.h"

#include <climits>
#include <string>
#include <vector>

#include "comm/mpi/mpi_util.h"

namespace smp::comm::mpi {

MpiBootstrap::MpiBootstrap(MPI_Comm group_comm, const char *what) : what_(what) {
  check(MPI_Comm_dup(group_comm, &comm_), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiBootstrap::~MpiBootstrap() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiBootstrap::check(int rc, const char *call) const {
  check_mpi(rc, (std::string(what_) + ": " + call).c_str());
}

int MpiBootstrap::count(size_t n, const char *call) const {
  if (n > static_cast<size_t>(INT_MAX))
    fail(Status::Backend, std::string(what_) + ": " + call + ": " + std::to_string(n) +
                              " bytes exceed one MPI call (a control-plane message is small)");
  return static_cast<int>(n);
}

void MpiBootstrap::broadcast(void *bytes, size_t n, int root) {
  check(MPI_Bcast(bytes, count(n, "MPI_Bcast"), MPI_BYTE, root, comm_), "MPI_Bcast");
}

// Lengths first, then the bytes: handles are binary and error texts vary.
std::vector<std::string> MpiBootstrap::allgatherv(const std::string &mine) {
  const int len = count(mine.size(), "MPI_Allgatherv");
  std::vector<int> lens(static_cast<size_t>(size_)), displs(static_cast<size_t>(size_));
  check(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, comm_), "MPI_Allgather");
  size_t total = 0;
  for (int r = 0; r < size_; ++r) {
    displs[static_cast<size_t>(r)] = count(total, "MPI_Allgatherv");
    total += static_cast<size_t>(lens[static_cast<size_t>(r)]);
  }
  std::vector<char> all(total + 1);
  check(MPI_Allgatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, comm_),
        "MPI_Allgatherv");
  std::vector<std::string> out;
  for (int r = 0; r < size_; ++r)
    out.emplace_back(all.data() + displs[static_cast<size_t>(r)], static_cast<size_t>(lens[static_cast<size_t>(r)]));
  return out;
}

void MpiBootstrap::gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) {
  std::vector<int> lens, displs;
  if (rank_ == root) {
    size_t total = 0;
    for (int r = 0; r < size_; ++r) {
      lens.push_back(count(counts[r], "MPI_Gatherv"));
      displs.push_back(count(total, "MPI_Gatherv"));
      total += counts[r];
    }
  }
  check(MPI_Gatherv(send, count(n, "MPI_Gatherv"), MPI_BYTE, recv, lens.data(), displs.data(), MPI_BYTE, root, comm_),
        "MPI_Gatherv");
}

int MpiBootstrap::all_min(int v) {
  int out = v;
  check(MPI_Allreduce(&v, &out, 1, MPI_INT, MPI_MIN, comm_), "MPI_Allreduce");
  return out;
}

void MpiBootstrap::barrier() { check(MPI_Barrier(comm_), "MPI_Barrier"); }

}  // namespace smp::comm::mpi
