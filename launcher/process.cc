#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace smp::launcher {

int ChildResult::shell_status() const {
  if (!started) return exec_errno == ENOENT ? 127 : 126;
  return signaled ? 128 + code : code;
}

static double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

ChildResult run_child(const std::vector<std::string> &argv, const ChildOptions &options) {
  ChildResult result;
  // Block the signals we handle before forking, and take them with
  // sigtimedwait: no handler races, and a SIGCHLD can never be missed.
  sigset_t handled, old;
  sigemptyset(&handled);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&handled, s);
  sigprocmask(SIG_BLOCK, &handled, &old);

  // exec's errno comes back through a close-on-exec pipe: EOF means it ran.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.exec_errno = errno;
    sigprocmask(SIG_SETMASK, &old, nullptr);
    return result;
  }
  std::vector<char *> cargv;
  for (const std::string &a : argv) cargv.push_back(const_cast<char *>(a.c_str()));
  cargv.push_back(nullptr);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (options.parent_death_signal) {
      prctl(PR_SET_PDEATHSIG, options.parent_death_signal);
      if (getppid() != parent) _exit(128 + options.parent_death_signal);  // died before prctl
    }
    sigprocmask(SIG_SETMASK, &old, nullptr);
    execvp(cargv[0], cargv.data());
    const int err = errno;
    ssize_t ignored = write(fds[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(fds[1]);
  if (pid < 0) {
    result.exec_errno = errno;
    close(fds[0]);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    return result;
  }
  int err = 0;
  ssize_t n;
  do n = read(fds[0], &err, sizeof err); while (n < 0 && errno == EINTR);
  close(fds[0]);
  result.started = n != static_cast<ssize_t>(sizeof err);
  if (!result.started) result.exec_errno = err;

  double kill_at = -1;
  for (;;) {
    int status = 0;
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      result.signaled = WIFSIGNALED(status);
      result.code = result.signaled ? WTERMSIG(status) : WEXITSTATUS(status);
      break;
    }
    if (kill_at >= 0 && now_s() >= kill_at) {
      kill(pid, SIGKILL);
      kill_at = -1;
    }
    timespec wait = {0, 100 * 1000 * 1000};  // wake up now and then for the kill deadline
    siginfo_t info;
    const int sig = sigtimedwait(&handled, &info, &wait);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
      if (result.stop_signal == 0) {
        result.stop_signal = sig;
        kill(pid, options.forward_as ? options.forward_as : sig);
        kill_at = now_s() + options.kill_after_s;
      } else {
        kill(pid, SIGKILL);
      }
    } else if (sig == SIGUSR1 || sig == SIGUSR2) {
      kill(pid, sig);
    }
  }
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (!result.started) result.signaled = false;
  return result;
}

}  // namespace smp::launcher
