// check-bench: what SMP_CHECK costs per call. Times one blocking
// collective with the check off and on, in the same run: each repetition
// starts smp twice (check off, then on) on the same MPI world and times
// the same calls, so both see the same machine. Prints, per size, the
// median time per call of each and the difference (the check's cost).
//
//   mpirun -np 2 check-bench --op allreduce --bytes 8,1048576
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "smp/smp.h"
#include "timing.h"

namespace {

using smp::bench::median;

void check(smp_status_t st, const char *what) {
  if (st != SMP_SUCCESS) {
    std::fprintf(stderr, "check-bench: %s: %s\n", what, smp_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

// Seconds per call of fn: `iters` calls between barriers; the slowest rank.
double time_once(int iters, const std::function<void()> &fn) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int i = 0; i < iters; ++i) fn();
  double t = (MPI_Wtime() - t0) / iters, worst = 0;
  MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}

}  // namespace

int main(int argc, char **argv) {
  std::string op = "allreduce";
  std::vector<size_t> sizes = {8, 1 << 20};
  int reps = 11, warmup = 20;
  double rep_seconds = 0.05;
  CLI::App app{"check-bench: SMP_CHECK's cost per call (check off vs on, same run); under mpirun"};
  app.add_option("--op", op, "allreduce | barrier | broadcast")->check(CLI::IsMember({"allreduce", "barrier", "broadcast"}));
  app.add_option("--bytes", sizes, "message sizes in bytes (float32 elements)")->delimiter(',');
  app.add_option("-r,--reps", reps, "repetitions (each: check off, then on)");
  app.add_option("--rep-seconds", rep_seconds, "iterations per repetition: about this long");
  CLI11_PARSE(app, argc, argv);

  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0, nranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  if (rank == 0) {
    std::printf("# check-bench --op %s, %d ranks, median of %d reps (each: check off, then on)\n", op.c_str(),
                nranks, reps);
    std::printf("%12s %14s %14s %14s\n", "bytes", "unchecked_us", "checked_us", "cost_us");
  }
  for (size_t bytes : sizes) {
    const size_t n = std::max<size_t>(bytes / sizeof(float), 1);
    std::vector<float> in(n, 1.0f), out(n);
    auto call = [&] {
      if (op == "allreduce")
        check(smp_allreduce(in.data(), out.data(), n, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr), "allreduce");
      else if (op == "broadcast")
        check(smp_broadcast(in.data(), n, SMP_FLOAT32, 0, SMP_WORLD, nullptr), "broadcast");
      else
        check(smp_barrier(SMP_WORLD), "barrier");
    };
    // Iterations per rep from one unchecked estimate, the same for both modes.
    int iters = 1;
    {
      smp_config_t c = SMP_CONFIG_INIT;
      c.check = 0;
      check(smp_init(&c), "smp_init");
      for (int i = 0; i < warmup; ++i) call();
      const double t = time_once(10, call);
      iters = static_cast<int>(std::max(1.0, rep_seconds / std::max(t, 1e-9)));
      MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
      check(smp_finalize(), "smp_finalize");
    }
    std::vector<double> off, on;
    for (int r = 0; r < reps; ++r)
      for (int mode = 0; mode < 2; ++mode) {
        smp_config_t c = SMP_CONFIG_INIT;
        c.check = mode;
        check(smp_init(&c), "smp_init");
        for (int i = 0; i < warmup; ++i) call();
        (mode ? on : off).push_back(time_once(iters, call));
        check(smp_finalize(), "smp_finalize");
      }
    if (rank == 0) {
      const double a = median(off) * 1e6, b = median(on) * 1e6;
      std::printf("%12zu %14.2f %14.2f %14.2f\n", bytes, a, b, b - a);
      std::fflush(stdout);
    }
  }
  MPI_Finalize();
  return 0;
}
