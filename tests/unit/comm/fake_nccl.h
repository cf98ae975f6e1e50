// Test double for NCCL communicator creation: a fake NCCL, one instance per
// rank, sharing a FakeWorld that records what every rank did (the ranks
// meet over thread_bootstrap.h).
#pragma once

#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "comm/nccl/nccl_api.h"

namespace smp::comm::nccl::testing {

struct FakeComm {
  std::string id;
  int rank, nranks;
  int polls_left;  // InProgress until it reaches 0; < 0: forever
  int state = kNcclInProgress;
};

struct FakeWorld {
  std::mutex mu;
  int ids_made = 0, inits = 0, aborts = 0, destroys = 0;
  std::map<std::string, std::set<int>> joined;  // id -> ranks that initialized with it
  std::set<FakeComm *> live;
};

class FakeNccl final : public NcclApi {
 public:
  FakeNccl(FakeWorld &w, std::string key) : w_(w), key_(std::move(key)) {}
  bool fail_unique_id = false;
  bool fail_init = false;
  int init_polls = 0;  // polls before creation completes; -1: never

  int get_unique_id(char id[kUniqueIdBytes]) override {
    if (fail_unique_id) return 2;  // ncclSystemError
    std::lock_guard<std::mutex> lock(w_.mu);
    std::memset(id, 0, kUniqueIdBytes);
    const std::string s = "fake-id-" + std::to_string(++w_.ids_made);
    s.copy(id, kUniqueIdBytes - 1);
    return kNcclSuccess;
  }
  int comm_init_rank(void **comm, int nranks, const char id[kUniqueIdBytes], int rank) override {
    std::lock_guard<std::mutex> lock(w_.mu);
    ++w_.inits;
    *comm = nullptr;
    if (fail_init) return 3;  // ncclInternalError
    auto *c = new FakeComm{std::string(id), rank, nranks, init_polls};
    if (init_polls == 0) c->state = kNcclSuccess;
    w_.joined[c->id].insert(rank);
    w_.live.insert(c);
    *comm = c;
    return c->state;
  }
  int get_async_error(void *comm, int *async_error) override {
    std::lock_guard<std::mutex> lock(w_.mu);
    auto *c = static_cast<FakeComm *>(comm);
    if (c->state == kNcclInProgress && c->polls_left > 0 && --c->polls_left == 0) c->state = kNcclSuccess;
    *async_error = c->state;
    return kNcclSuccess;
  }
  int comm_abort(void *comm) override { return release(comm, w_.aborts); }
  int comm_destroy(void *comm) override { return release(comm, w_.destroys); }
  std::string error_string(int rc) override { return "fake NCCL error " + std::to_string(rc); }
  std::string device_key() override { return key_; }

  // What a failed peer looks like later: an asynchronous error.
  void set_async_error(void *comm, int rc) {
    std::lock_guard<std::mutex> lock(w_.mu);
    static_cast<FakeComm *>(comm)->state = rc;
  }

 private:
  int release(void *comm, int &counter) {
    std::lock_guard<std::mutex> lock(w_.mu);
    auto *c = static_cast<FakeComm *>(comm);
    if (!w_.live.erase(c)) return 4;  // ncclInvalidArgument: freed twice
    ++counter;
    delete c;
    return kNcclSuccess;
  }
  FakeWorld &w_;
  std::string key_;
};

}  // namespace smp::comm::nccl::testing
