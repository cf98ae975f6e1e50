// smprun: launches a hybrid-parallel job over Open MPI's mpirun.
//
// smprun discovers this host once (hwloc), plans the job (plan.cc, pure),
// checks the other hosts, all at once, over ssh (host_check.h; inside a
// Slurm allocation Slurm's nodes are the hosts and srun may launch), then
// runs mpirun, which starts smprun-rank on every rank; smprun-rank binds
// the rank, sets its variables and runs the program. smprun stays mpirun's
// parent (rather than exec'ing it) so that a SIGINT/SIGTERM it gets ends the
// job even if mpirun is stuck (SIGKILL after a grace period, and mpirun gets
// SIGTERM if smprun itself dies), and so that it can say how the job ended.
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "cli.h"
#include "hang_report.h"
#include "host_check.h"
#include "plan.h"
#include "process.h"
#include "rank_env.h"
#include "topo/hardware.h"

using namespace smp::launcher;

extern char **environ;

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

// "0-3,6" for the ranks of `host`.
std::string ranks_on(const Plan &plan, const std::string &host) {
  std::string out;
  int first = -1, last = -2;
  auto flush = [&]() {
    if (first < 0) return;
    out += (out.empty() ? "" : ",") + std::to_string(first) + (last > first ? "-" + std::to_string(last) : "");
  };
  for (const RankRow &r : plan.rows) {
    if (r.host != host) continue;
    if (r.rank != last + 1) {
      flush();
      first = r.rank;
    }
    last = r.rank;
  }
  flush();
  return out;
}

// The remote shell Open MPI uses to reach other hosts (its plm_rsh_agent,
// ssh by default), with options that keep a check from waiting on a
// password prompt or a dead host.
std::vector<std::string> ssh_agent() {
  const char *agent = std::getenv("OMPI_MCA_plm_rsh_agent");
  std::vector<std::string> a;
  if (agent && *agent) {
    std::string first = agent;
    first = first.substr(0, first.find(':'));
    a = split_args(first);
  }
  if (a.empty()) a = {"ssh"};
  const std::string base = a[0].substr(a[0].rfind('/') + 1);
  if (base == "ssh") a.insert(a.begin() + 1, {"-o", "BatchMode=yes", "-o", "ConnectTimeout=10"});
  return a;
}

// Where the check's ssh connections wait for mpirun (OpenSSH's connection
// sharing): one socket per host, %C being ssh's hash of the host; "" when
// the remote shell is not plain ssh or the path would be too long for a
// socket.
std::string ssh_control_path() {
  const char *agent = std::getenv("OMPI_MCA_plm_rsh_agent");
  if (agent && *agent) return "";
  const char *dir = std::getenv("TMPDIR");
  std::string base = dir && *dir ? dir : "/tmp";
  if (base.size() > 40) base = "/tmp";
  return base + "/smprun-" + std::to_string(getpid()) + "-%C";
}

// Checks the hosts in parallel (host_check.h); an empty string when all
// are fine, else one line naming every host that is not. With a control
// path, each check's connection stays open (2 s after its last use) and
// mpirun's ssh to that host reuses it: the check costs no second login.
std::string check_all(const std::vector<std::string> &hosts, const std::string &rank_entry,
                      const std::string &program, double timeout_s, const std::string &control, HostInfo *info) {
  const char *path = std::getenv("PATH");
  char cwd[PATH_MAX] = {};
  const std::string here = getcwd(cwd, sizeof cwd - 1) ? cwd : "";
  const std::string cmd =
      check_command(rank_entry, SMP_VERSION_STRING, path ? path : "/usr/bin:/bin", program, here);
  std::vector<std::string> agent = ssh_agent();
  if (!control.empty())
    agent.insert(agent.begin() + 1, {"-o", "ControlMaster=yes", "-o", "ControlPersist=2", "-o",
                                     "ControlPath=" + control});
  std::string failed;
  for (const HostCheck &c : check_hosts(hosts, agent, cmd, rank_entry, timeout_s)) {
    if (!c.ok) {
      failed += (failed.empty() ? "" : "; ") + std::string("host ") + c.host + ": " + c.reason;
      continue;
    }
    if (info) {
      info->host_cores[c.host] = c.cores;
      info->host_port[c.host] = c.free_port;
    }
  }
  return failed;
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
  Options o = cmd.options;
  Plan plan;
  bool over_ssh = false;  // the other hosts are reached by ssh (not Slurm's)
  std::string xml;
  try {
    std::vector<HostSlots> hosts;
    HostInfo info;
    if (!o.hosts.empty()) hosts = parse_hosts(o.hosts);
    if (!o.hostfile.empty()) hosts = read_hostfile(o.hostfile);
    // Inside a Slurm allocation (salloc, sbatch) with no hosts given, the
    // allocation is the hosts; -np defaults to its tasks.
    const char *nodelist = std::getenv("SLURM_JOB_NODELIST");
    const char *per_node = std::getenv("SLURM_TASKS_PER_NODE");
    if (hosts.empty() && std::getenv("SLURM_JOB_ID") && nodelist && per_node) {
      hosts = slurm_hosts(nodelist, per_node);
      info.hosts_from_slurm = true;
      const char *ntasks = std::getenv("SLURM_NTASKS");
      if (o.np == 0 && ntasks) o.np = std::atoi(ntasks);
    } else if (o.launcher == "srun") {
      throw UsageError("--launcher srun needs a Slurm allocation (run smprun inside salloc or sbatch)");
    }
    const std::string launcher = o.launcher == "srun" ? std::string("srun") : o.mpirun;
    info.mpirun = resolve_program(launcher);
    if (info.mpirun.empty())
      throw UsageError(o.launcher == "srun"
                           ? "cannot find srun on PATH; install Slurm's client (slurm-client) or use --launcher mpirun"
                           : "cannot find mpirun '" + o.mpirun + "' (not on PATH or not executable); install Open "
                             "MPI (scripts/install-deps.sh) or pass --mpirun PATH");
    info.rank_entry = rank_entry_path();
    if (access(info.rank_entry.c_str(), X_OK) != 0)
      throw UsageError("cannot find " + info.rank_entry + " (smprun runs every rank through it); reinstall smp");
    info.hostname = this_hostname();
    info.is_root = geteuid() == 0;
    for (const char *name : {"PATH", "LD_LIBRARY_PATH", "PYTHONPATH"})
      if (std::getenv(name)) info.forward.push_back(name);
    for (char **env = environ; *env; ++env) {
      const std::string name = std::string(*env).substr(0, std::string(*env).find('='));
      if (name.rfind("SMP_", 0) == 0 && name != kTopologyXmlVar && name != kTopologyHostVar &&
          name != kHangReportVar)
        info.forward.push_back(name);
    }
    if (const char *v = std::getenv("MASTER_ADDR")) info.master_addr = v;
    if (const char *v = std::getenv("MASTER_PORT")) info.master_port = v;
    info.local_port = free_tcp_port();
    const smp::topo::HwTopology topo = smp::topo::HwTopology::discover();
    info.machine = topo.machine();
    std::string warning;
    info.visible = smp::topo::visible_gpus(info.machine.gpus, std::getenv("CUDA_VISIBLE_DEVICES"), &warning);
    if (!warning.empty()) std::fprintf(stderr, "smprun: warning: %s\n", warning.c_str());
    // Planned once before the checks, so that a usage error costs no ssh;
    // a hostfile line without slots= counts that host's cores, known only
    // after its check, so the slot count waits for the second plan.
    Options first = o;
    if (!o.dry_run && !info.hosts_from_slurm &&
        std::any_of(hosts.begin(), hosts.end(), [&](const HostSlots &h) {
          return h.slots < 1 && !is_this_host(h.name, info.hostname);
        }))
      first.oversubscribe = true;
    plan = make_plan(first, hosts, info);
    // Every other host, at once, before anything starts: reachable, the same
    // smprun-rank and smp, the program there. (Slurm checks its own nodes.)
    if (!o.dry_run && !info.hosts_from_slurm) {
      std::vector<std::string> others;
      for (const HostSlots &h : hosts)
        if (!is_this_host(h.name, info.hostname) &&
            std::find(others.begin(), others.end(), h.name) == others.end())
          others.push_back(h.name);
      if (!others.empty()) {
        const std::string control = ssh_control_path();
        const std::string failed = check_all(others, info.rank_entry, o.program[0], 30, control, &info);
        if (!failed.empty()) throw UsageError(failed);
        if (!control.empty()) info.rsh_agent = "ssh -o ControlMaster=no -o ControlPath=" + control;
        plan = make_plan(o, hosts, info);  // again, with the hosts' cores and ports
        over_ssh = true;
      }
    }
    if (o.dry_run || o.print_topology) {
      std::fputs(format_table(plan).c_str(), stdout);
      if (o.dry_run) {
        for (const auto &[name, value] : plan.setenv) std::printf("%s=%s ", name.c_str(), value.c_str());
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
  for (const auto &[name, value] : plan.setenv) setenv(name.c_str(), value.c_str(), 1);

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
  // A job on several hosts that failed: were hosts lost? Ask them again
  // (briefly) and name the ones that no longer answer, with their ranks.
  if (r.shell_status() != 0 && over_ssh && !plan.remote_hosts.empty()) {
    std::string lost;
    const std::string entry = rank_entry_path();
    const std::string cmd = check_command(entry, SMP_VERSION_STRING, "/", "/");
    for (const HostCheck &c : check_hosts(plan.remote_hosts, ssh_agent(), cmd, entry, 5))
      if (!c.ok && c.reason.rfind("unreachable", 0) == 0)
        lost += (lost.empty() ? "" : "; ") + c.host + " (ranks " + ranks_on(plan, c.host) + "): " + c.reason;
    if (!lost.empty()) {
      std::fprintf(stderr, "smprun: lost host %s\n", lost.c_str());
      return r.shell_status() != 0 ? r.shell_status() : 1;
    }
  }
  return r.shell_status();
}
