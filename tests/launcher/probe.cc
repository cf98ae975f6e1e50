// The program the launcher tests run under smprun. Modes:
//   env            print one JSON line: this rank's variables, cpu affinity and host
//   env-to DIR     write that line to DIR/rank-$SMP_RANK.json
//   sleep          print "ready <pid>", then wait forever (signal tests)
//   stubborn       as sleep, but ignore SIGINT and SIGTERM (only SIGKILL ends it)
//   exit R CODE    the rank with SMP_RANK == R exits CODE at once; others sleep
//   kill R         the rank with SMP_RANK == R dies of SIGKILL; others sleep
//   marker PATH    create PATH (bad-input tests check it never appears)
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

extern char **environ;

namespace {

std::string json_escape(const char *s) {
  std::string out;
  for (; *s; ++s) {
    if (*s == '"' || *s == '\\') out += '\\';
    if (static_cast<unsigned char>(*s) < 0x20) continue;
    out += *s;
  }
  return out;
}

bool wanted(const std::string &name) {
  static const char *exact[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                                "OMPI_COMM_WORLD_LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "PATH",
                                "LD_LIBRARY_PATH", "PYTHONPATH", "NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"};
  for (const char *e : exact)
    if (name == e) return true;
  return name.rfind("SMP_", 0) == 0 || name.rfind("PROBE_", 0) == 0 || name.rfind("HWLOC_", 0) == 0;
}

[[noreturn]] void sleep_forever() {
  std::printf("ready %d\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  for (;;) pause();
}

}  // namespace

int main(int argc, char **argv) {
  const std::string mode = argc > 1 ? argv[1] : "env";
  // env-to DIR: the same line into DIR/rank-$SMP_RANK.json (output relayed
  // from other hosts may be cut into pieces and interleaved; a file is not).
  if (mode == "env" || (mode == "env-to" && argc == 3)) {
    std::string out = "{\"env\": {";
    bool first = true;
    for (char **e = environ; *e; ++e) {
      const char *eq = std::strchr(*e, '=');
      if (!eq) continue;
      const std::string name(*e, static_cast<size_t>(eq - *e));
      if (!wanted(name)) continue;
      out += (first ? "\"" : ", \"") + name + "\": \"" + json_escape(eq + 1) + "\"";
      first = false;
    }
    out += "}, \"cpus\": [";
    cpu_set_t set;
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    first = true;
    for (int i = 0; i < CPU_SETSIZE; ++i) {
      if (!CPU_ISSET(i, &set)) continue;
      out += (first ? "" : ", ") + std::to_string(i);
      first = false;
    }
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    out += "], \"host\": \"" + json_escape(host) + "\"}\n";
    if (mode == "env-to") {
      const char *rank = std::getenv("SMP_RANK");
      const std::string path = std::string(argv[2]) + "/rank-" + (rank ? rank : "x") + ".json";
      FILE *f = std::fopen(path.c_str(), "w");
      if (!f || std::fputs(out.c_str(), f) < 0 || std::fclose(f) != 0) {
        std::perror(path.c_str());
        return 1;
      }
      return 0;
    }
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  if (mode == "sleep") sleep_forever();
  if (mode == "stubborn") {
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    sleep_forever();
  }
  if (mode == "exit" && argc == 4) {
    const char *rank = std::getenv("SMP_RANK");
    if (rank && std::strcmp(rank, argv[2]) == 0) return std::atoi(argv[3]);
    sleep_forever();
  }
  if (mode == "kill" && argc == 3) {
    const char *rank = std::getenv("SMP_RANK");
    if (rank && std::strcmp(rank, argv[2]) == 0) raise(SIGKILL);
    sleep_forever();
  }
  if (mode == "marker" && argc == 3) {
    if (FILE *f = std::fopen(argv[2], "w")) std::fclose(f);
    return 0;
  }
  std::fprintf(stderr, "probe: unknown mode\n");
  return 64;
}
