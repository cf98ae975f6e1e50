// Running one child process while forwarding the signals that stop a job.
// smprun runs mpirun this way, and every rank's entry runs the rank's
// program this way: each stays the child's parent so that it learns the
// child's exit status and no signal leaves the child behind.
#pragma once

#include <string>
#include <vector>

namespace smp::launcher {

struct ChildOptions {
  // Signal to send the child when we get SIGINT, SIGTERM or SIGHUP;
  // 0 = the signal we got.
  int forward_as = 0;
  // After forwarding, SIGKILL the child if it is still there this much later
  // (a second SIGINT/SIGTERM/SIGHUP kills it at once).
  double kill_after_s = 10;
  // The child gets this signal if we die first (PR_SET_PDEATHSIG); 0 = none.
  int parent_death_signal = 0;
};

struct ChildResult {
  bool started = false;  // false: exec failed, exec_errno says why
  int exec_errno = 0;
  bool signaled = false;  // the child was killed by `code`
  int code = 0;           // exit status, or the signal that killed it
  int stop_signal = 0;    // the first SIGINT/SIGTERM/SIGHUP we got (0 = none)
  // Shell convention: the exit status, 128 + signal, 127/126 for exec failure.
  int shell_status() const;
};

// Runs argv[0] (searched on PATH when it has no slash) with argv; SIGUSR1 and
// SIGUSR2 are passed on as they are. Blocks until the child has ended.
ChildResult run_child(const std::vector<std::string> &argv, const ChildOptions &options);

}  // namespace smp::launcher
