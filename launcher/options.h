// smprun's command line, parsed (cli.cc) and not yet checked against the
// hardware or the hosts (plan.cc does that).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace smp::launcher {

// A usage error: smprun prints "smprun: <what>" on one line and exits 2,
// launching nothing. The message says what is wrong and how to fix it.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  int np = 0;  // 0: not given (GPUs on this host, else 1)
  int pp = 1;
  int tp = 1;
  std::string placement = "cluster";
  std::string hosts;     // -H, Open MPI syntax h1:s1,h2:s2
  std::string hostfile;  // --hostfile
  std::string bind = "auto";
  std::string timeout;   // "": not given; else a positive number of seconds
  bool check = false;
  std::string timeline;  // "": not given
  bool tag_output = false;
  std::vector<std::string> exports;  // -x NAME[=VALUE]
  std::string mpirun = "mpirun";
  std::string mpi_args;  // split like a shell would
  bool dry_run = false;
  bool print_topology = false;
  std::string iface;          // --iface: Open MPI's TCP/OOB and NCCL's socket interface
  bool oversubscribe = false; // --oversubscribe: more ranks than the hosts' slots
  std::string launcher = "mpirun";  // --launcher mpirun | srun
  std::vector<std::string> program;  // the program and its arguments
};

}  // namespace smp::launcher
