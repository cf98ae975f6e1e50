#include "comm/nccl/nccl_comm.h"

#include <chrono>
#include <cstring>
#include <thread>

namespace smp::comm::nccl {

NcclComm::NcclComm(NcclApi &api, Bootstrap &boot, double timeout_seconds)
    : api_(api), boot_(boot), timeout_(timeout_seconds) {}

NcclComm::~NcclComm() {
  if (comm_ && !aborted_) api_.comm_destroy(comm_);  // an aborted one is already freed
}

void *NcclComm::get() {
  std::lock_guard<std::mutex> lock(mu_);
  throw_if_failed();
  if (!tried_) {
    tried_ = true;
    create();
  }
  return comm_;
}

void NcclComm::create() {
  const int rank = boot_.rank(), size = boot_.size();

  // 1. One GPU per member, or no NCCL for anyone.
  const std::vector<std::string> keys = boot_.allgatherv(api_.device_key());
  for (int a = 0; a < size; ++a)
    for (int b = a + 1; b < size; ++b)
      if (keys[a] == keys[b]) {
        refusal_ = "ranks " + std::to_string(a) + " and " + std::to_string(b) + " of the group share GPU " +
                   keys[a] + " (NCCL needs one GPU per rank)";
        return;
      }

  // 2. The id, with member 0's success flag in front of it.
  char msg[1 + kUniqueIdBytes] = {};
  if (rank == 0) {
    const int rc = api_.get_unique_id(msg + 1);
    msg[0] = rc == kNcclSuccess ? 1 : 0;
    if (rc != kNcclSuccess) refusal_ = "ncclGetUniqueId failed: " + api_.error_string(rc);
  }
  boot_.broadcast(msg, sizeof msg, 0);
  if (msg[0] != 1) {
    if (refusal_.empty()) refusal_ = "ncclGetUniqueId failed on the group's rank 0";
    return;
  }

  // 3. This member's rank, polled to completion (or the timeout).
  void *comm = nullptr;
  int rc = api_.comm_init_rank(&comm, size, msg + 1, rank);
  const auto start = std::chrono::steady_clock::now();
  while (rc == kNcclInProgress && comm) {
    int state = kNcclSuccess;
    if (api_.get_async_error(comm, &state) != kNcclSuccess) break;
    rc = state;
    if (rc != kNcclInProgress) break;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (timeout_ > 0 && waited > timeout_) {
      rc = -1;
      refusal_ = "ncclCommInitRank did not complete within the " + std::to_string(timeout_) + " s timeout";
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  const bool ok = rc == kNcclSuccess && comm != nullptr;
  if (!ok && refusal_.empty()) refusal_ = "ncclCommInitRank failed: " + api_.error_string(rc);

  // 4. All or nobody.
  if (boot_.all_min(ok ? 1 : 0) == 1) {
    comm_ = comm;
    return;
  }
  if (comm && ok) api_.comm_destroy(comm);
  else if (comm) api_.comm_abort(comm);
  if (refusal_.empty()) refusal_ = "ncclCommInitRank failed on another rank of the group";
}

void NcclComm::throw_if_failed() {
  if (failed_status_ != Status::Success) fail(failed_status_, failed_why_);
}

void NcclComm::check_async(const char *what) {
  std::lock_guard<std::mutex> lock(mu_);
  throw_if_failed();
  if (!comm_) return;
  int state = kNcclSuccess;
  const int rc = api_.get_async_error(comm_, &state);
  if (rc == kNcclSuccess && (state == kNcclSuccess || state == kNcclInProgress)) return;
  failed_status_ = Status::PeerFailed;
  failed_why_ = std::string(what) + ": NCCL reported an asynchronous error (" +
                api_.error_string(rc != kNcclSuccess ? rc : state) +
                "); the communicator was aborted";
  api_.comm_abort(comm_);
  aborted_ = true;
  throw_if_failed();
}

void NcclComm::abort(Status status, const std::string &why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failed_status_ != Status::Success || !comm_) return;
  failed_status_ = status;
  failed_why_ = why;
  api_.comm_abort(comm_);
  aborted_ = true;
}

}  // namespace smp::comm::nccl
