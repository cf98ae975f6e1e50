// Command lines of the benchmarks: CLI11, so that a bad number is a usage
// error (exit 2, one line) instead of a silent zero from atoi/strtoull.
// Under mpirun every rank parses; only the job's rank 0 prints.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <cstring>

namespace smp::bench {

// -1: go on; otherwise the exit code (0 after --help, 2 after a usage error).
inline int parse(CLI::App &app, int argc, char **argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError &e) {
    const char *rank = std::getenv("OMPI_COMM_WORLD_RANK");
    if (rank == nullptr || std::strcmp(rank, "0") == 0) app.exit(e);
    return e.get_exit_code() == 0 ? 0 : 2;
  }
}

}  // namespace smp::bench
