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
//
// The user's call: a CallScope at a C API entry point (tensor transport,
// checkpoint save and load) names the call as the user made it, with its
// arguments ("smp_ckpt_save(\"/ckpt\", sharded)"); the line and the
// answers to queries name it ahead of the internal operation it waits in
// (a tensor header's irecv, a checkpoint's gatherv).
//
// SMP_HANG_REPORT (smprun sets it): an existing file (none is created: a
// rank on another host than smprun's has none) to which the rank whose
// timeout fires appends one line, what it waits in and which ranks have
// not arrived, before it aborts; smprun reads it to name the stuck rank
// last.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
  // The group's own timeout (smp_group_set_timeout; 0: none), in place of
  // SMP_TIMEOUT; < 0: SMP_TIMEOUT's.
  double timeout = -1;
};

// The one line the watchdog prints (without the newline). Pure, for tests
// (a created group's name comes from comm/groups.h).
// missing: what the query found ("not arrived: rank 2 (...)"), "" for none;
// call: the user's call (CallScope), "" for none.
std::string timeout_message(int world_rank, const OpInfo &info, double waited_seconds,
                            double timeout_seconds, const std::string &missing = "",
                            const std::string &call = "");

// A rank the query found holding the operation up: not in an operation on
// the group (or, for a point-to-point operation, the peer), and what it
// does instead ("in no smp operation", "waiting in ...", "no answer: ...").
struct Absent {
  int rank = -1;
  std::string state;
};

// The line appended to SMP_HANG_REPORT (without the newline): tab-separated
// "smp-hang", the waiting world rank, what it waits in ("call: op on
// GROUP"), then a rank and its state per absent rank. Tabs and newlines in
// the text become spaces. Pure, for tests; launcher/hang_report.h reads it.
std::string hang_report_line(int world_rank, const std::string &waits_in, const std::vector<Absent> &absent);

class Watchdog {
 public:
  // timeout_seconds <= 0: nothing is watched (OpScope costs one load)
  // until a group gets a timeout of its own (watch_group). layout: to find
  // a group's members; control: a duplicate of MPI_COMM_WORLD this object
  // frees, MPI_COMM_NULL without MPI_THREAD_MULTIPLE (then nobody is asked).
  Watchdog(double timeout_seconds, int world_rank, const topo::Layout &layout, MPI_Comm control);
  ~Watchdog();
  // A group's operations now carry a timeout of `seconds` (OpInfo::timeout):
  // starts watching (the thread) if nothing was, and polls often enough for
  // it. Thread-safe.
  void watch_group(double seconds);
  Watchdog(const Watchdog &) = delete;
  Watchdog &operator=(const Watchdog &) = delete;

 private:
  void run();
  void serve_queries();  // answer what this rank waits in
  std::string ask_members(const OpInfo &info, std::vector<Absent> *absent);
  void abort_after_grace();
  void append_report(const std::string &line);

  double timeout_;
  std::atomic<double> shortest_;  // the smallest timeout watched, for the poll period
  int world_rank_;
  topo::Layout layout_;
  MPI_Comm control_;
  std::string report_path_;  // SMP_HANG_REPORT, "" for none
  std::mutex mu_;  // stop_, starting thread_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Names the user's call that the enclosing operations serve (see the top
// of this file). Nested scopes keep the outermost, the one the user made.
// describe() (returning std::string) runs only while a watchdog runs: off,
// a scope costs one load.
class CallScope {
 public:
  template <class Describe>
  explicit CallScope(Describe &&describe) {
    if (watching()) enter(describe());
  }
  ~CallScope() {
    if (slot_ != nullptr) leave();
  }
  CallScope(const CallScope &) = delete;
  CallScope &operator=(const CallScope &) = delete;

  // This thread's current user call, "" outside one or while no watchdog
  // runs: a request keeps its posting call's, for the smp_wait that ends it.
  static std::string current();
  static bool watching();

 private:
  void enter(std::string label);
  void leave();
  struct Slot *slot_ = nullptr;  // null when not watching
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
