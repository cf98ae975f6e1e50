// A pending isend / irecv: the MPI requests of its chunks.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "comm/request.h"

namespace smp::comm::mpi {

// Point-to-point requests not yet completed and freed; smp_finalize
// refuses to pull MPI from under them.
int pending_requests();

class MpiRequest final : public Request {
 public:
  // expected: for a receive, the element count of each chunk (to reject a
  // shorter message); empty for a send. elem: the chunks' MPI datatype.
  MpiRequest(std::vector<MPI_Request> reqs, std::vector<int> expected, MPI_Datatype elem,
             std::string what);
  ~MpiRequest() override;
  void wait() override;
  bool test() override;

 private:
  void finish(const std::vector<MPI_Status> &statuses);

  std::vector<MPI_Request> reqs_;
  std::vector<int> expected_;
  MPI_Datatype elem_;
  std::string what_;  // "irecv from peer 1 (tag 7)" for messages
  bool done_ = false;
  std::string error_;  // set once done with a failure
};

}  // namespace smp::comm::mpi
