// Hang protection (SMP_TIMEOUT). Every blocking operation runs inside an
// OpScope that publishes, in a per-thread slot, what the thread is waiting
// on: a few relaxed stores and one release store of a sequence number, no
// clock read, no lock. A watchdog thread polls the slots; an operation seen
// pending with the same sequence number for longer than the timeout makes
// the rank print one line (world rank, operation, group, peer/root, tag,
// count, seconds waited) and abort the whole job with MPI_Abort, so that no
// rank of it is left hanging.
//
// Which members have not arrived: every watchdog thread answers queries on
// a control channel (a duplicate of MPI_COMM_WORLD, polled once a period,
// so it costs nothing per operation) with what its rank is waiting in. A
// rank whose timeout fires asks the members of the group it waits on (or
// its peer) and names those not waiting in an operation on that group,
// and what they are doing instead, or that they do not answer. It then
// keeps answering for a moment before aborting, so that every waiting
// rank can print its own line.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include <mpi.h>

#include "topo/layout.h"

namespace smp::comm {

// What a pending operation waits on. peer and root are group ranks, -1 when
// the operation has none; tag -1 likewise.
struct OpInfo {
  const char *op = "";
  topo::Group group = topo::Group::World;
  int peer = -1;
  int root = -1;
  int tag = -1;
  size_t count = 0;
};

// The one line the watchdog prints (without the newline). Pure, for tests.
// missing: what the query found ("not arrived: rank 2 (...)"), "" for none.
std::string timeout_message(int world_rank, const OpInfo &info, double waited_seconds,
                            double timeout_seconds, const std::string &missing = "");

class Watchdog {
 public:
  // timeout_seconds <= 0: nothing is watched (OpScope costs one load).
  // layout: to find a group's members; control: a duplicate of
  // MPI_COMM_WORLD this object frees, MPI_COMM_NULL without
  // MPI_THREAD_MULTIPLE (then nobody is asked).
  Watchdog(double timeout_seconds, int world_rank, const topo::Layout &layout, MPI_Comm control);
  ~Watchdog();
  Watchdog(const Watchdog &) = delete;
  Watchdog &operator=(const Watchdog &) = delete;

 private:
  void run();
  void serve_queries();  // answer what this rank waits in
  std::string ask_members(const OpInfo &info);
  void abort_after_grace();

  double timeout_;
  int world_rank_;
  topo::Layout layout_;
  MPI_Comm control_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Marks the enclosing blocking operation as pending on this thread.
class OpScope {
 public:
  explicit OpScope(const OpInfo &info);
  ~OpScope();
  OpScope(const OpScope &) = delete;
  OpScope &operator=(const OpScope &) = delete;

 private:
  struct Slot *slot_ = nullptr;  // null while no watchdog runs
};

}  // namespace smp::comm
