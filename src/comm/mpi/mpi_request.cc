#include "comm/mpi/mpi_request.h"

#include "comm/mpi/mpi_util.h"

#include <atomic>

namespace smp::comm::mpi {

namespace {
std::atomic<int> g_pending{0};
}

int pending_requests() { return g_pending.load(); }

MpiRequest::MpiRequest(std::vector<MPI_Request> reqs, std::vector<int> expected,
                       MPI_Datatype elem, std::string what)
    : reqs_(std::move(reqs)), expected_(std::move(expected)), elem_(elem), what_(std::move(what)) {
  ++g_pending;
}

MpiRequest::~MpiRequest() {
  // Never leave MPI writing into a buffer whose request is gone.
  if (!done_) MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE);
  --g_pending;
}

void MpiRequest::finish(const std::vector<MPI_Status> &statuses) {
  done_ = true;
  for (size_t i = 0; i < expected_.size(); ++i) {
    int got = 0;
    MPI_Get_count(&statuses[i], elem_, &got);
    if (got != expected_[i]) {
      error_ = what_ + ": the message is shorter than count (" + std::to_string(got) +
               " elements arrived where " + std::to_string(expected_[i]) + " were expected)";
      return;
    }
  }
}

void MpiRequest::wait() {
  if (!done_) {
    std::vector<MPI_Status> statuses(reqs_.size());
    const int rc = MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), statuses.data());
    if (rc != MPI_SUCCESS) {
      done_ = true;
      try { throw_mpi(rc, what_.c_str()); } catch (const Error &e) { error_ = e.what(); }
    } else {
      finish(statuses);
    }
  }
  if (!error_.empty()) fail(Status::Backend, error_);
}

bool MpiRequest::test() {
  if (!done_) {
    int flag = 0;
    std::vector<MPI_Status> statuses(reqs_.size());
    const int rc = MPI_Testall(static_cast<int>(reqs_.size()), reqs_.data(), &flag, statuses.data());
    if (rc != MPI_SUCCESS) {
      done_ = true;
      try { throw_mpi(rc, what_.c_str()); } catch (const Error &e) { error_ = e.what(); }
    } else if (flag) {
      finish(statuses);
    } else {
      return false;
    }
  }
  if (!error_.empty()) fail(Status::Backend, error_);
  return true;
}

}  // namespace smp::comm::mpi
