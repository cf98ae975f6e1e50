// A minimal harness for tests run under mpirun: a failed CHECK prints the
// rank and the condition and aborts the whole job (MPI_Abort), so a
// failure on one rank never leaves the others waiting.
#pragma once

#include <mpi.h>

#include <cstdio>
#include <string>

#include "comm/context.h"

namespace smp_test {

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

[[noreturn]] inline void die(const char *file, int line, const std::string &what) {
  std::fprintf(stderr, "rank %d: %s:%d: CHECK failed: %s\n", world_rank(), file, line, what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

// MPI first (to learn the world size), then smp with every rank in one
// pipeline: pp = world size, so the PP group is the whole world.
inline smp::comm::Context &init_pipeline_world(int *argc, char ***argv) {
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  smp::comm::Options o;
  o.pp_size = size;
  return smp::comm::Context::init(o);
}

inline void finish() {
  smp::comm::Context::finalize();
  MPI_Finalize();
}

}  // namespace smp_test

#define CHECK(cond)                                                             \
  do {                                                                          \
    if (!(cond)) smp_test::die(__FILE__, __LINE__, #cond);                      \
  } while (0)
#define CHECK_MSG(cond, msg)                                                    \
  do {                                                                          \
    if (!(cond)) smp_test::die(__FILE__, __LINE__, std::string(#cond) + ": " + (msg)); \
  } while (0)
