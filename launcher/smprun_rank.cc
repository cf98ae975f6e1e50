// smprun-rank: the per-rank entry smprun's mpirun starts on every rank.
// It learns the rank from the launcher's variables, computes its
// coordinates, binds it (hwloc), sets SMP_* and the usual RANK/WORLD_SIZE
// variables, and runs the program.
//
// It stays the program's parent instead of exec'ing it: that is how it
// learns the program's exit status and prints the one line naming a failed
// rank (mpirun's own report names Open MPI's process, not our rank and
// host, and parsing it would tie us to one Open MPI version). The cost is one
// sleeping process per rank. Signals from mpirun are passed on; if this
// entry dies the program gets SIGKILL, and if mpirun (or orted) dies this
// entry gets SIGTERM, so no program outlives its job.
//
// Kept light: no CUDA, no MPI, and on smprun's host no hwloc discovery (the
// XML smprun exported is loaded instead).
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "host_check.h"
#include "process.h"
#include "rank_env.h"
#include "topo/hardware.h"
#include "topo/layout.h"

using namespace smp::launcher;
namespace topo = smp::topo;

namespace {

std::string this_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

topo::HwTopology load_topology(const std::string &hostname) {
  const char *xml = std::getenv(kTopologyXmlVar);
  const char *host = std::getenv(kTopologyHostVar);
  if (xml && host && hostname == host) return topo::HwTopology::from_xml_text(xml, /*this_system=*/true);
  return topo::HwTopology::discover();
}

}  // namespace

int main(int argc, char **argv) {
  // smprun's check of this host before a job (host_check.h):
  // smprun-rank --check-host VERSION PATH PROGRAM.
  if (argc == 5 && std::strcmp(argv[1], "--check-host") == 0) {
    int status = 1;
    std::printf("%s\n", check_host_reply(argv[2], argv[3], argv[4], &status).c_str());
    return status;
  }
  const pid_t launcher = getppid();
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != launcher) return 128 + SIGTERM;  // the launcher is already gone

  const std::string hostname = this_hostname();
  EntryOptions e;
  RankIds ids;
  try {
    e = parse_entry_args(std::vector<std::string>(argv + 1, argv + argc));
    ids = read_rank_ids([](const char *n) { return static_cast<const char *>(std::getenv(n)); }, e.np);
    const topo::Layout layout(ids.size, e.pp, e.tp, topo::Placement::parse(e.placement));
    const topo::HwTopology hw = load_topology(hostname);
    const topo::Machine machine = hw.machine();
    const std::vector<int> visible = topo::visible_gpus(machine.gpus, std::getenv("CUDA_VISIBLE_DEVICES"));
    const topo::RankBinding binding = topo::plan_binding(machine, visible, e.bind, ids.local_rank, ids.local_size);
    if (!binding.cpus.empty()) hw.bind(binding.cpus);
    unsetenv(kTopologyXmlVar);
    unsetenv(kTopologyHostVar);
    for (const auto &[name, value] : rank_env(layout, ids, binding, e)) setenv(name.c_str(), value.c_str(), 1);
  } catch (const std::exception &ex) {
    const std::string who = ids.rank >= 0 ? "rank " + std::to_string(ids.rank) : "smprun-rank";
    std::fprintf(stderr, "smprun: %s on %s: %s\n", who.c_str(), hostname.c_str(), ex.what());
    return 1;
  }

  ChildOptions copts;
  copts.kill_after_s = 5;
  copts.parent_death_signal = SIGKILL;
  const ChildResult r = run_child(e.program, copts);
  const std::string who = "smprun: rank " + std::to_string(ids.rank) + " (local rank " +
                          std::to_string(ids.local_rank) + " on " + hostname + ")";
  if (!r.started) {
    std::fprintf(stderr, "%s cannot run '%s': %s\n", who.c_str(), e.program[0].c_str(), std::strerror(r.exec_errno));
  } else if (r.stop_signal) {
    // The job is being stopped: the rank that caused it has said so.
  } else if (r.signaled) {
    std::fprintf(stderr, "%s was killed by signal %d (%s)\n", who.c_str(), r.code, strsignal(r.code));
  } else if (r.code != 0) {
    std::fprintf(stderr, "%s exited with status %d\n", who.c_str(), r.code);
  }
  return r.shell_status();
}
