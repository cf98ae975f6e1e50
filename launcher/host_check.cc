#include "host_check.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <limits.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include "plan.h"

namespace smp::launcher {

namespace {

std::string last_line(const std::string &text) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

bool executable_on(const std::string &program, const std::string &path) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    if (colon == std::string::npos) colon = path.size();
    const std::string dir = path.substr(pos, colon - pos);
    if (access(((dir.empty() ? "." : dir) + "/" + program).c_str(), X_OK) == 0) return true;
    pos = colon + 1;
  }
  return false;
}

}  // namespace

int free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

std::string check_command(const std::string &rank_entry, const std::string &version, const std::string &path,
                          const std::string &program, const std::string &cwd) {
  // Open MPI starts remote ranks in mpirun's directory where the host has
  // it (else the home directory): a relative program is looked up there.
  const std::string cd = cwd.empty() ? "" : "cd " + shell_join({cwd}) + " 2>/dev/null; ";
  return cd + "exec " + shell_join({rank_entry, "--check-host", version, path, program});
}

std::string check_host_reply(const std::string &version, const std::string &path, const std::string &program,
                             int *status) {
  char name[HOST_NAME_MAX + 1] = {};
  gethostname(name, sizeof name - 1);
  *status = 1;
  if (version != SMP_VERSION_STRING)
    return "error runs smp " + std::string(SMP_VERSION_STRING) + ", smprun is smp " + version;
  if (!executable_on(program, path))
    return "error has no program '" + program + "'" +
           (program.find('/') == std::string::npos ? " on PATH " + path : "") +
           " (the hosts need the same paths as this one)";
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  *status = 0;
  return "ok " + std::string(name) + " " + std::to_string(cores > 0 ? cores : 1) + " " +
         std::to_string(free_tcp_port());
}

HostCheck parse_check(const std::string &host, int status, bool timed_out, const std::string &out,
                      const std::string &err, const std::string &rank_entry) {
  HostCheck c;
  c.host = host;
  const std::string line = last_line(out), why = last_line(err);
  if (timed_out) {
    c.reason = "unreachable (no answer over ssh in time" + (why.empty() ? "" : ": " + why) + ")";
    return c;
  }
  if (status == 255) {
    c.reason = "unreachable (" + (why.empty() ? std::string("ssh failed") : why) + ")";
    return c;
  }
  if (status == 127 || status == 126) {
    c.reason = "has no smprun-rank at " + rank_entry + " (install smp at the same path on every host)";
    return c;
  }
  std::istringstream words(line);
  std::string kind;
  words >> kind;
  if (kind == "ok" && (words >> c.hostname >> c.cores >> c.free_port) && c.cores > 0) {
    c.ok = true;
    return c;
  }
  if (kind == "error") {
    c.reason = line.substr(6);
    return c;
  }
  c.reason = "smprun-rank there did not answer the check (another smp version?): " +
             (why.empty() ? line : why);
  return c;
}

std::vector<HostCheck> check_hosts(const std::vector<std::string> &hosts, const std::vector<std::string> &agent,
                                   const std::string &command, const std::string &rank_entry, double timeout_s) {
  struct Job {
    pid_t pid = -1;
    int fd[2] = {-1, -1};  // stdout, stderr
    std::string text[2];
    int status = -1;
    bool done = false, timed_out = false;
  };
  std::vector<Job> jobs(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) {
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0) continue;
    if (pipe2(pe, O_CLOEXEC) != 0) {
      close(po[0]);
      close(po[1]);
      continue;
    }
    std::vector<std::string> argv = agent;
    argv.push_back(hosts[i]);
    argv.push_back(command);
    const pid_t pid = fork();
    if (pid == 0) {
      setpgid(0, 0);  // its own group: a check that overstays is ended whole
      const int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      dup2(po[1], 1);
      dup2(pe[1], 2);
      std::vector<char *> a;
      for (std::string &s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      execvp(a[0], a.data());
      _exit(255);
    }
    if (pid > 0) setpgid(pid, pid);  // either side may win the race; both set it
    close(po[1]);
    close(pe[1]);
    jobs[i].pid = pid;
    jobs[i].fd[0] = po[0];
    jobs[i].fd[1] = pe[0];
    if (pid < 0) {
      close(po[0]);
      close(pe[0]);
      jobs[i].fd[0] = jobs[i].fd[1] = -1;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<size_t, int>> who;
    for (size_t i = 0; i < jobs.size(); ++i)
      for (int k = 0; k < 2; ++k)
        if (jobs[i].fd[k] >= 0) {
          fds.push_back({jobs[i].fd[k], POLLIN, 0});
          who.emplace_back(i, k);
        }
    if (fds.empty()) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (poll(fds.data(), fds.size(), static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (size_t j = 0; j < fds.size(); ++j) {
      if (!(fds[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Job &job = jobs[who[j].first];
      char buf[4096];
      const ssize_t n = read(fds[j].fd, buf, sizeof buf);
      if (n > 0) {
        if (job.text[who[j].second].size() < 65536) job.text[who[j].second].append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[j].fd);
        job.fd[who[j].second] = -1;
      }
    }
  }
  std::vector<HostCheck> out;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Job &job = jobs[i];
    for (int &fd : job.fd)
      if (fd >= 0) {
        close(fd);
        fd = -1;
        job.timed_out = true;
      }
    if (job.pid > 0) {
      int st = 0;
      // The pipes are closed: wait for ssh to exit, a little, then end it.
      for (int tries = 0; tries < 50 && waitpid(job.pid, &st, WNOHANG) == 0; ++tries) {
        if (tries == 0 && job.timed_out) kill(-job.pid, SIGKILL);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (tries == 49) {
          kill(-job.pid, SIGKILL);
          waitpid(job.pid, &st, 0);
          job.timed_out = true;
        }
      }
      job.status = WIFEXITED(st) ? WEXITSTATUS(st) : 255;
    } else {
      job.status = 255;
      job.text[1] = std::string("cannot run ") + (agent.empty() ? "ssh" : agent[0]) + ": " + std::strerror(errno);
    }
    out.push_back(parse_check(hosts[i], job.status, job.timed_out, job.text[0], job.text[1], rank_entry));
  }
  return out;
}

}  // namespace smp::launcher
