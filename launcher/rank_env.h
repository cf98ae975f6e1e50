// The per-rank half of smprun, as pure functions: who this rank is (from
// the launcher's variables), the arguments smprun hands the per-rank entry,
// and the environment the rank's program gets.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "topo/hardware.h"
#include "topo/layout.h"

namespace smp::launcher {

// Reads a variable; nullptr when unset. std::getenv in production, a map in
// the tests.
using GetEnv = std::function<const char *(const char *)>;

struct RankIds {
  int rank = -1, size = -1, local_rank = -1, local_size = -1;
};

// Open MPI's OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE} first, then
// PMIx's PMIX_RANK, Slurm's SLURM_{PROCID,NTASKS,LOCALID} (local size from
// SLURM_STEP_TASKS_PER_NODE or SLURM_TASKS_PER_NODE and SLURM_NODEID), then
// Hydra's PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS; each value
// from the first launcher that sets it. `expected_size` (> 0) is the size
// smprun planned: it fills in a size no launcher gives and must match one
// that does. Throws std::runtime_error naming what is missing or wrong.
RankIds read_rank_ids(const GetEnv &getenv, int expected_size);

// "2(x3),1" -> {2, 2, 2, 1}; throws std::invalid_argument.
std::vector<int> parse_slurm_tasks_per_node(const std::string &text);

// What smprun passes to every rank's entry (smprun-rank) on its command line.
struct EntryOptions {
  int np = 1, pp = 1, tp = 1;
  std::string placement = "DPT";  // letters
  topo::Bind bind = topo::Bind::Auto;
  std::string timeout;   // "" = not given
  bool check = false;
  std::string timeline;  // "" = not given
  // torch's rendezvous: the host of world rank 0 and a port free there
  // (smprun picks both unless the user's environment sets them); "" = unset.
  std::string master_addr, master_port;
  std::vector<std::string> program;
};

// The entry's arguments, program last after "--"; parse_entry_args inverts
// it (and throws std::invalid_argument for anything else).
std::vector<std::string> entry_args(const EntryOptions &o);
EntryOptions parse_entry_args(const std::vector<std::string> &args);

// The variables a rank's program gets, in DESIGN.md's order: SMP_RANK ...
// SMP_PLACEMENT, SMP_DEVICE, SMP_TIMEOUT / SMP_CHECK / SMP_TIMELINE when
// their flags were given (otherwise whatever the user's environment holds
// is left alone), RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE, and
// MASTER_ADDR MASTER_PORT when smprun gave them.
using EnvList = std::vector<std::pair<std::string, std::string>>;
EnvList rank_env(const topo::Layout &layout, const RankIds &ids, const topo::RankBinding &binding,
                 const EntryOptions &o);

// Variables smprun hands its local ranks through mpirun's environment so
// they need not rediscover the host: the hwloc XML and the host it is of.
inline constexpr char kTopologyXmlVar[] = "SMP_TOPOLOGY_XML";
inline constexpr char kTopologyHostVar[] = "SMP_TOPOLOGY_HOST";

}  // namespace smp::launcher
