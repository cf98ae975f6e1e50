// smprun's plan, pure: from the options, the hosts and what smprun knows of
// this host to the rank table and the exact mpirun command. No I/O except
// read_hostfile; no MPI.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "options.h"
#include "topo/hardware.h"
#include "topo/layout.h"

namespace smp::launcher {

struct HostSlots {
  std::string name;
  int slots = 0;  // 0: not given (a hostfile line without slots=)
};

// Bounds on what a user's numbers may ask for: more ranks than this, or a
// hostfile larger than this, is a usage error rather than an allocation
// that fails (or a read that never ends).
inline constexpr int kMaxRanks = 1 << 24;
inline constexpr size_t kMaxHostfileBytes = size_t{1} << 20;

// -H text, Open MPI syntax "h1:2,h2" (a host without :N has one slot).
// Throws UsageError.
std::vector<HostSlots> parse_hosts(const std::string &text);
// An Open MPI hostfile: "name [slots=N] [max_slots=M]" per line, # comments.
// Throws UsageError when unreadable or malformed.
std::vector<HostSlots> read_hostfile(const std::string &path);
// A Slurm node list, "n[1-3,7],gpu-a" -> n1 n2 n3 n7 gpu-a (what
// `scontrol show hostnames` prints), with the tasks per node
// (SLURM_TASKS_PER_NODE, "2(x3),1") as slots. Throws UsageError.
std::vector<HostSlots> slurm_hosts(const std::string &nodelist, const std::string &tasks_per_node);
std::vector<std::string> expand_nodelist(const std::string &nodelist);
// Whether `name` (from -H, a hostfile or Slurm) is the host smprun runs on.
bool is_this_host(const std::string &name, const std::string &hostname);

// Splits --mpi-args like a POSIX shell: blanks separate words; '...', "..."
// and backslash quote. Throws UsageError for an unterminated quote.
std::vector<std::string> split_args(const std::string &text);
// The inverse, for printing a command a shell can run as is.
std::string shell_join(const std::vector<std::string> &argv);

// What smprun knows of the host it runs on.
struct HostInfo {
  std::string hostname;
  bool is_root = false;
  topo::Machine machine;
  std::vector<int> visible;  // GPUs CUDA shows here (topo::visible_gpus)
  std::string mpirun;        // resolved path of mpirun
  std::string rank_entry;    // path of smprun-rank
  // What the host checks learnt of the other hosts (host_check.h): cores
  // (their slots where none are given) and a port free there.
  std::map<std::string, int> host_cores, host_port;
  int local_port = 0;                     // a port free on this host
  std::string master_addr, master_port;   // the user's MASTER_ADDR / MASTER_PORT, if set
  // Names of the variables set here that ranks on other hosts need: PATH,
  // LD_LIBRARY_PATH, PYTHONPATH, SMP_* (forwarded with -x when the job has
  // -H/--hostfile).
  std::vector<std::string> forward;
  bool hosts_from_slurm = false;          // `hosts` is the Slurm allocation
  std::string rsh_agent;                  // mpirun's remote shell (plm_rsh_agent), "" = its default
};

struct RankRow {
  int rank = 0;
  std::string host;
  int local_rank = 0, local_size = 1;
  topo::Coord coord;
  int dp_rank = 0, mp_rank = 0;
  topo::RankBinding binding;
};

struct Plan {
  topo::Layout layout{1, 1, 1};
  topo::Bind bind = topo::Bind::Auto;
  std::vector<RankRow> rows;          // ranks as Open MPI maps them: each host's slots in turn
  std::vector<std::string> argv;      // the mpirun command, argv[0] = mpirun
  bool other_hosts = false;           // some ranks run on other hosts (bound there)
  int split_tp_groups = 0;            // TP groups whose ranks are on more than one host
  bool map_by_node = false;           // ranks dealt round-robin over the hosts (keeps TP groups whole):
                                      // mpirun --map-by node, srun --distribution=cyclic
  std::vector<std::string> remote_hosts;  // hosts other than this one that get ranks
  // For --launcher srun: variables smprun sets in its own environment
  // (srun passes the whole environment on).
  std::vector<std::pair<std::string, std::string>> setenv;
};

// Throws UsageError for anything the user must fix (bad degrees, placement,
// binding, -x, --mpi-args, --bind gpu without GPUs, more ranks than the
// hosts' slots without --oversubscribe). `hosts` is empty for a job on this
// host alone.
Plan make_plan(const Options &o, const std::vector<HostSlots> &hosts, const HostInfo &info);

// How many TP groups have ranks on more than one host, rank r being on
// host_of[r].
int split_tp_groups(const topo::Layout &layout, const std::vector<std::string> &host_of);

// The rank's rank within group g, in O(1) (what Layout::group_rank gives).
int group_rank_of(const topo::Layout &l, topo::Group g, const topo::Coord &c);

// The readable rank table (rank, host, local rank, pp, tp, rdp, dp, mp,
// device, cpus) with a header line describing the job.
std::string format_table(const Plan &plan);

}  // namespace smp::launcher
