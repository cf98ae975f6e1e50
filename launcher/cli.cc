#include "cli.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <cstdlib>

#ifndef SMP_VERSION_STRING
#error "the build defines SMP_VERSION_STRING"
#endif

namespace smp::launcher {

namespace {

bool is_positive_number(const std::string &text) {
  if (text.empty()) return false;
  char *end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  return end && *end == '\0' && v > 0 && v < 1e9;
}

bool is_env_name(const std::string &name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

// CLI11 cannot declare the multi-letter short flag -np (Open MPI's spelling):
// rewrite it to --np. Tokens that end up in the program's arguments are taken
// from the original list afterwards, so a "-np" there is passed on unchanged.
std::vector<std::string> rewrite_np(const std::vector<std::string> &args) {
  std::vector<std::string> out = args;
  for (std::string &a : out) {
    if (a == "-np" || a.rfind("-np=", 0) == 0) a = "-" + a;
  }
  return out;
}

}  // namespace

Command parse_command_line(const std::vector<std::string> &args) {
  Command cmd;
  Options &o = cmd.options;
  CLI::App app{"Launch a hybrid-parallel job (pipeline x tensor x data parallel) over Open MPI's mpirun.",
               "smprun"};
  app.prefix_command();
  app.set_version_flag("--version", std::string("smprun ") + SMP_VERSION_STRING);
  app.footer(
      "PROGRAM [ARGS...] follows the options (after -- if its name starts with -).\n"
      "Every rank gets SMP_RANK SMP_SIZE SMP_LOCAL_RANK SMP_LOCAL_SIZE SMP_{PP,TP,RDP,DP,MP}_{RANK,SIZE}\n"
      "SMP_PLACEMENT SMP_DEVICE (SMP_TIMEOUT SMP_CHECK SMP_TIMELINE when given) and RANK WORLD_SIZE\n"
      "LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR MASTER_PORT (the host of rank 0 and a port free there, unless\n"
      "already set). With -H/--hostfile, PATH LD_LIBRARY_PATH PYTHONPATH, every SMP_* variable set here and the\n"
      "-x names are forwarded to every host, and every host is checked first (reachable by ssh, same smprun-rank,\n"
      "same smp version, the program there). Exit status: 0 if every rank exited 0, else the failing rank's;\n"
      "2 for a usage error (nothing is launched).");

  auto *np = app.add_option("-n,--np", o.np, "ranks in all (default: GPUs on this host, else 1); also -np");
  auto *pp = app.add_option("--pp,--pipeline-parallel-degree", o.pp, "pipeline-parallel degree (default 1)");
  auto *tp = app.add_option("--tp,--tensor-parallel-degree", o.tp, "tensor-parallel degree (default 1)");
  app.add_option("--placement", o.placement,
                 "cluster (= DPT, default) | spread (= TPD) | any permutation of D, P, T; the right-most "
                 "letter varies fastest over consecutive ranks");
  auto *hosts = app.add_option("-H,--hosts", o.hosts, "hosts and slots, h1:s1,h2:s2 (Open MPI syntax)");
  auto *hostfile = app.add_option("--hostfile", o.hostfile, "Open MPI hostfile");
  app.add_option("--bind", o.bind, "auto | gpu | numa | core | none (default auto: gpu with GPUs, else none)");
  app.add_option("--timeout", o.timeout, "hang timeout in seconds of every collective and p2p op (SMP_TIMEOUT)");
  app.add_flag("--check", o.check, "verify every collective's arguments across its group (SMP_CHECK=1)");
  app.add_option("--timeline", o.timeline, "record a Chrome-trace timeline to PATH (SMP_TIMELINE)");
  app.add_flag("--tag-output", o.tag_output, "prefix every output line with its rank (mpirun's)");
  app.add_option("-x", o.exports, "forward an environment variable NAME[=VALUE]; repeatable")
      ->allow_extra_args(false);
  app.add_option("--mpirun", o.mpirun, "mpirun to use (default: mpirun on PATH)");
  app.add_option("--mpi-args", o.mpi_args, "extra mpirun arguments, split like a shell would");
  app.add_flag("--dry-run", o.dry_run, "print the rank table and the mpirun command; launch nothing");
  app.add_flag("--print-topology", o.print_topology, "print the rank table, then launch");
  app.add_option("--iface", o.iface,
                 "network interface for Open MPI's TCP and out-of-band traffic and NCCL's and gloo's sockets "
                 "(NCCL_SOCKET_IFNAME, GLOO_SOCKET_IFNAME), e.g. eth0; lo for hosts on one machine");
  app.add_flag("--oversubscribe", o.oversubscribe,
               "allow more ranks than the slots of -H/--hostfile (or of the Slurm allocation)");
  app.add_option("--launcher", o.launcher,
                 "mpirun (default; hosts from -H/--hostfile, else the Slurm allocation, else this host) | srun "
                 "(inside a Slurm allocation: srun starts the ranks)");

  const std::vector<std::string> rewritten = rewrite_np(args);
  std::vector<std::string> reversed(rewritten.rbegin(), rewritten.rend());  // CLI11's order
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp &) {
    cmd.kind = Command::Help;
    cmd.text = app.help();
    return cmd;
  } catch (const CLI::CallForVersion &e) {
    cmd.kind = Command::Version;
    cmd.text = std::string(e.what()) + "\n";
    return cmd;
  } catch (const CLI::ParseError &e) {
    throw UsageError(std::string(e.what()) + "; see smprun --help");
  }

  // With prefix_command CLI11 sets aside what it does not know and goes on;
  // the set-aside tokens are the tail of the list (the program and its
  // arguments), preceded by unknown options or "--" if there were any.
  const std::vector<std::string> rest = app.remaining();
  size_t start = args.size() - rest.size();
  if (!rest.empty() && rest[0] == "--") {
    ++start;
  } else if (!rest.empty() && rest[0].size() > 1 && rest[0][0] == '-') {
    throw UsageError("unknown option '" + args[start] + "'; see smprun --help (put -- before a program whose "
                     "name starts with -)");
  }
  o.program.assign(args.begin() + static_cast<long>(start), args.end());
  if (o.program.empty())
    throw UsageError("no program given; usage: smprun [OPTIONS] [--] PROGRAM [ARGS...]");

  if (np->count() > 0 && o.np < 1)
    throw UsageError("-np must be at least 1 (got " + std::to_string(o.np) + ")");
  if (pp->count() > 0 && o.pp < 1)
    throw UsageError("--pp must be at least 1 (got " + std::to_string(o.pp) + ")");
  if (tp->count() > 0 && o.tp < 1)
    throw UsageError("--tp must be at least 1 (got " + std::to_string(o.tp) + ")");
  if (hosts->count() > 0 && hostfile->count() > 0)
    throw UsageError("-H and --hostfile both name the hosts; give one of them");
  if (!o.timeout.empty() && !is_positive_number(o.timeout))
    throw UsageError("--timeout must be a positive number of seconds (got '" + o.timeout + "')");
  for (const std::string &x : o.exports) {
    const std::string name = x.substr(0, x.find('='));
    if (!is_env_name(name))
      throw UsageError("-x '" + x + "' is not NAME or NAME=VALUE with NAME made of letters, digits and _");
  }
  if (o.mpirun.empty()) throw UsageError("--mpirun needs the path of an mpirun");
  if (o.launcher != "mpirun" && o.launcher != "srun")
    throw UsageError("--launcher must be mpirun or srun (got '" + o.launcher + "')");
  if (!o.iface.empty() && (o.iface.size() > 64 || o.iface.find_first_of(" \t\n,;'\"") != std::string::npos))
    throw UsageError("--iface '" + o.iface + "' is not a network interface name (e.g. eth0, ib0, lo)");
  if (o.launcher == "srun" && (hosts->count() > 0 || hostfile->count() > 0))
    throw UsageError("--launcher srun takes its hosts from the Slurm allocation; drop -H/--hostfile");
  return cmd;
}

}  // namespace smp::launcher
