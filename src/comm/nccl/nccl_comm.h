// One NCCL communicator per group, created on the group's first device
// collective by its members alone:
//
//   1. every member publishes its GPU (device_key); if two members share
//      one, NCCL would refuse ("Duplicate GPU detected"), so all of them
//      decline NCCL together, without calling it;
//   2. member 0 makes the unique id and broadcasts it over the group's own
//      host communicator, with a flag saying whether that worked;
//   3. every member creates its rank (non-blocking, polled, so a hang
//      timeout can abort it);
//   4. the members agree (all_min): NCCL is used only if every member
//      succeeded; otherwise every member frees what it made and all of them
//      fall back to the staged backend together.
//
// Nothing here involves ranks outside the group (no split of the world
// communicator), so a group's creation cannot hang ranks that never touch
// it. Later, the communicator's asynchronous errors are polled, and a
// failure or the hang timeout aborts it (ncclCommAbort), after which every
// call reports the error instead of enqueuing work that could never finish.
#pragma once

#include <mutex>
#include <string>

#include "comm/bootstrap.h"
#include "comm/nccl/nccl_api.h"
#include "common/error.h"

namespace smp::comm::nccl {

class NcclComm {
 public:
  // timeout_seconds <= 0: creation is polled without a limit.
  NcclComm(NcclApi &api, Bootstrap &boot, double timeout_seconds);
  ~NcclComm();
  NcclComm(const NcclComm &) = delete;
  NcclComm &operator=(const NcclComm &) = delete;

  // The communicator, created by the first call (collective over the
  // group); nullptr when the group declined NCCL (see refusal()). Throws
  // the recorded error once the communicator has been aborted.
  void *get();
  const std::string &refusal() const { return refusal_; }
  bool created() const { return comm_ != nullptr; }

  // Polls ncclCommGetAsyncError; on an error, aborts the communicator and
  // throws smp::Error(PeerFailed). Cheap; called around every operation.
  void check_async(const char *what);
  // Aborts the communicator (e.g. the hang timeout fired) and records why:
  // later calls throw smp::Error(status, why). Safe from another thread.
  void abort(Status status, const std::string &why);

 private:
  void create();
  void throw_if_failed();

  NcclApi &api_;
  Bootstrap &boot_;
  double timeout_;
  std::mutex mu_;
  bool tried_ = false;
  void *comm_ = nullptr;
  bool aborted_ = false;  // ncclCommAbort freed comm_
  std::string refusal_;
  Status failed_status_ = Status::Success;
  std::string failed_why_;
};

}  // namespace smp::comm::nccl
