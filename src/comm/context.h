// The initialized world: MPI (started here if the program has not), the
// rank layout, one Communicator per group, the hang watchdog. Exactly one
// Context exists between init() and finalize().
#pragma once

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "topo/layout.h"

namespace smp::comm {

// Explicit settings; a field left "unset" comes from smprun's environment
// (SMP_PP_SIZE, SMP_TP_SIZE, SMP_PLACEMENT, SMP_TIMEOUT, SMP_CHECK), and
// failing that from the default. Mirrors smp_config_t.
struct Options {
  int pp_size = 0;              // 0 = unset (default 1)
  int tp_size = 0;              // 0 = unset (default 1)
  std::string placement;        // "" = unset (default cluster = DPT)
  double timeout_seconds = -1;  // < 0 = unset (default 0 = no timeout)
  int check = -1;               // -1 = unset (default 0)
};

class Watchdog;       // comm/watchdog.h
class BackendSelect;  // comm/backend_select.h

class Context {
 public:
  // Starts the world. Throws smp::Error: InvalidArgument for bad options or
  // environment (the message names the variable), Backend if MPI fails,
  // InvalidArgument if already initialized.
  static Context &init(const Options &options = {});
  // Releases every group (draining non-blocking work) and finalizes MPI if
  // init() started it. Throws NotInitialized when there is nothing to end.
  static void finalize();
  // The live context, or nullptr outside init()..finalize().
  static Context *current();
  // The live context; throws smp::Error(NotInitialized) if there is none.
  static Context &get();

  const topo::Layout &layout() const { return layout_; }
  int world_rank() const { return world_rank_; }
  // Rank among the ranks on this host and how many there are; the GPU
  // index this rank should use (-1: none). See smp_device in smp.h.
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  int device() const { return device_; }
  int world_size() const { return layout_.size(); }
  double timeout_seconds() const { return timeout_; }
  bool check() const { return check_; }
  // A layout group, or a created one (comm/groups.h); throws
  // smp::Error(InvalidArgument) for a value that names neither here.
  // Thread-safe. A created group must not be destroyed while another
  // thread still uses the reference.
  Communicator &group(topo::Group g);
  // The same without throwing: nullptr for an unknown value.
  Communicator *find_group(int g) noexcept;

  // Groups beyond the layout's (smp_group_create): collective over the
  // listed world ranks only (MPI_Comm_create_group), each calling it with
  // the same list; group rank i is world_ranks[i]. Returns the new group's
  // value (kFirstUserGroup + an id the members agree on, comm/groups.h).
  // Creations are serialized within a process; the ranks of overlapping
  // groups must create them in an order that cannot deadlock, as with any
  // collective. Throws InvalidArgument (before communicating) for an empty
  // list, a duplicate, a rank out of range, or a list without this rank.
  topo::Group create_group(const std::vector<int> &world_ranks);
  // Releases a created group: its queued non-blocking collectives run
  // first. Local. InvalidArgument for a layout group or an unknown value.
  void destroy_group(topo::Group g);
  // smp_group_set_timeout: seconds >= 0 (0: none) for g's operations, in
  // place of SMP_TIMEOUT; starts the watchdog if it was not running.
  void set_group_timeout(topo::Group g, double seconds);

  ~Context();

 private:
  Context(topo::Layout layout, int world_rank, double timeout, bool check, bool own_mpi);

  topo::Layout layout_;
  int world_rank_;
  int local_rank_ = 0, local_size_ = 1, device_ = -1;
  double timeout_;
  bool check_;
  bool own_mpi_;  // finalize MPI at the end: init() started it
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<CallChecker> checker_;  // SMP_CHECK only; outlives groups_
  std::array<std::unique_ptr<Communicator>, topo::kAllGroups.size()> groups_;
  // What a created group's communicator and backends are made with (as init's).
  CommSettings settings_;
  std::unique_ptr<BackendSelect> select_;
  std::mutex create_mu_;        // one creation at a time
  int next_user_id_ = 0;        // above every created group id this rank has seen
  std::mutex user_mu_;          // user_groups_
  std::map<int, std::unique_ptr<Communicator>> user_groups_;
};

}  // namespace smp::comm
