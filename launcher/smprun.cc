// smprun: launches a hybrid-parallel job over Open MPI's mpirun.
//
// smprun discovers this host once (hwloc), plans the job (plan.cc, pure),
// then runs mpirun, which starts smprun-rank on every rank; smprun-rank binds
// the rank, sets its variables and runs the program. smprun stays mpirun's
// parent (rather than exec'ing it) so that a SIGINT/SIGTERM it gets ends the
// job even if mpirun is stuck (SIGKILL after a grace period, and mpirun gets
// SIGTERM if smprun itself dies), and so that it can say how the job ended.
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "cli.h"
#include "hang_report.h"
#include "plan.h"
#include "process.h"
#include "rank_env.h"
#include "topo/hardware.h"

using namespace smp::launcher;

namespace {

// Bigger than this, the XML stays out of the environment and ranks discover
// their host themselves (a variable must stay well under Linux's 128 KiB).
constexpr size_t kMaxXmlInEnv = 96 * 1024;

std::string this_hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// The path exec would run for `name`, or "" when there is none.
std::string resolve_program(const std::string &name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char *path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= dirs.size()) {
    size_t colon = dirs.find(':', pos);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(pos, colon - pos);
    const std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    if (access(cand.c_str(), X_OK) == 0) return cand;
    pos = colon + 1;
  }
  return "";
}

// smprun-rank lives next to smprun (build tree and install alike).
std::string rank_entry_path() {
  char buf[PATH_MAX] = {};
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string self = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "smprun";
  return self.substr(0, self.rfind('/') + 1) + "smprun-rank";
}

// An empty file for the ranks' hang report (hang_report.h), in $TMPDIR or
// /tmp; "" if none can be made (the job runs without one).
std::string make_hang_report() {
  const char *dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/smprun-hang-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) return "";
  close(fd);
  return path;
}

std::string read_file(const std::string &path) {
  std::ifstream f(path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

int usage_error(const std::string &what) {
  std::fprintf(stderr, "smprun: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char **argv) {
  Command cmd;
  try {
    cmd = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const UsageError &e) {
    return usage_error(e.what());
  }
  if (cmd.kind != Command::Run) {
    std::fputs(cmd.text.c_str(), stdout);
    return 0;
  }
  const Options &o = cmd.options;
  Plan plan;
  std::string xml;
  try {
    std::vector<HostSlots> hosts;
    if (!o.hosts.empty()) hosts = parse_hosts(o.hosts);
    if (!o.hostfile.empty()) hosts = read_hostfile(o.hostfile);
    HostInfo info;
    info.mpirun = resolve_program(o.mpirun);
    if (info.mpirun.empty())
      throw UsageError("cannot find mpirun '" + o.mpirun + "' (not on PATH or not executable); install Open MPI "
                       "(scripts/install-deps.sh) or pass --mpirun PATH");
    info.rank_entry = rank_entry_path();
    if (access(info.rank_entry.c_str(), X_OK) != 0)
      throw UsageError("cannot find " + info.rank_entry + " (smprun runs every rank through it); reinstall smp");
    info.hostname = this_hostname();
    info.is_root = geteuid() == 0;
    const smp::topo::HwTopology topo = smp::topo::HwTopology::discover();
    info.machine = topo.machine();
    std::string warning;
    info.visible = smp::topo::visible_gpus(info.machine.gpus, std::getenv("CUDA_VISIBLE_DEVICES"), &warning);
    if (!warning.empty()) std::fprintf(stderr, "smprun: warning: %s\n", warning.c_str());
    plan = make_plan(o, hosts, info);
    if (o.dry_run || o.print_topology) {
      std::fputs(format_table(plan).c_str(), stdout);
      if (o.dry_run) {
        std::printf("%s\n", shell_join(plan.argv).c_str());
        return 0;
      }
      std::fflush(stdout);
    }
    xml = topo.export_xml_text();
  } catch (const UsageError &e) {
    return usage_error(e.what());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "smprun: error: %s\n", e.what());
    return 1;
  }

  // Local ranks inherit mpirun's environment: hand them this host's
  // topology so they need not discover it again. Ranks on other hosts do not
  // get it (or, under Slurm's environment propagation, see another host
  // name) and discover their own.
  if (xml.size() <= kMaxXmlInEnv) {
    setenv(kTopologyXmlVar, xml.c_str(), 1);
    setenv(kTopologyHostVar, this_hostname().c_str(), 1);
  }
  // Ranks whose SMP_TIMEOUT fires write what they wait for here (local
  // ranks inherit mpirun's environment; srun passes it on too).
  const std::string report = make_hang_report();
  if (!report.empty()) setenv(kHangReportVar, report.c_str(), 1);
  ChildOptions copts;
  copts.forward_as = SIGTERM;  // mpirun ends the whole job on SIGTERM
  copts.kill_after_s = 10;
  copts.parent_death_signal = SIGTERM;
  const ChildResult r = run_child(plan.argv, copts);
  // After mpirun's own lines, the rank(s) that held the job up.
  const std::string summary = report.empty() || r.shell_status() == 0 ? "" : hang_summary(read_file(report));
  if (!report.empty()) unlink(report.c_str());
  if (!r.started) {
    std::fprintf(stderr, "smprun: cannot run %s: %s\n", plan.argv[0].c_str(), std::strerror(r.exec_errno));
    return r.shell_status();
  }
  if (r.stop_signal) {
    std::fprintf(stderr, "smprun: stopped by %s; every rank was ended\n", strsignal(r.stop_signal));
    return 128 + r.stop_signal;
  }
  if (r.signaled) std::fprintf(stderr, "smprun: mpirun was killed by %s\n", strsignal(r.code));
  if (!summary.empty()) std::fprintf(stderr, "%s\n", summary.c_str());
  return r.shell_status();
}
