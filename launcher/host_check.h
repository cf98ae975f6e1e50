// Before a job on several hosts starts, smprun asks every other host, in
// parallel and over the same ssh Open MPI uses, whether it can run its
// ranks: reachable, the same smprun-rank at the same path, the same smp
// version, the program there. The host answers by running
// `smprun-rank --check-host` (check_host_reply below), which also says how
// many cores it has (its slots when the hostfile gives none) and a TCP port
// free there (MASTER_PORT when world rank 0 runs there).
#pragma once

#include <string>
#include <vector>

namespace smp::launcher {

struct HostCheck {
  std::string host;      // as -H/--hostfile name it
  bool ok = false;
  std::string reason;    // why not, in words, when !ok
  std::string hostname;  // what the host calls itself
  int cores = 0;
  int free_port = 0;
};

// The command a host runs for the check (smprun-rank's --check-host mode),
// as one shell line for ssh: `[cd CWD;] exec ENTRY --check-host VERSION PATH
// PROGRAM`, in `cwd` (where Open MPI starts the ranks) when given.
std::string check_command(const std::string &rank_entry, const std::string &version, const std::string &path,
                          const std::string &program, const std::string &cwd = "");

// What smprun-rank --check-host prints on this host: "ok HOSTNAME CORES PORT"
// or "error REASON", one line. `program` is searched on `path` when it has
// no slash. Exit status: 0 for ok.
std::string check_host_reply(const std::string &version, const std::string &path, const std::string &program,
                             int *status);

// Turns ssh's exit status and output into a HostCheck (pure): 255 is ssh's
// own failure (unreachable, refused, authentication), 127/126 a missing or
// unusable smprun-rank, otherwise the reply line.
HostCheck parse_check(const std::string &host, int status, bool timed_out, const std::string &out,
                      const std::string &err, const std::string &rank_entry);

// Runs `agent... HOST COMMAND` for every host at once and waits for all of
// them, at most `timeout_s` (a host still silent then is unreachable).
// `agent` is ssh with its options (OMPI_MCA_plm_rsh_agent's, if set).
std::vector<HostCheck> check_hosts(const std::vector<std::string> &hosts, const std::vector<std::string> &agent,
                                   const std::string &command, const std::string &rank_entry, double timeout_s);

// A TCP port free on this host now (0 if none could be found).
int free_tcp_port();

}  // namespace smp::launcher
