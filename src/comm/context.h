// The initialized world: MPI (started here if the program has not), the
// rank layout, one Communicator per group, the hang watchdog. Exactly one
// Context exists between init() and finalize().
#pragma once

#include <array>
#include <memory>
#include <string>

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

class Watchdog;  // comm/watchdog.h

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
  Communicator &group(topo::Group g) { return *groups_.at(static_cast<size_t>(g)); }

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
};

}  // namespace smp::comm
