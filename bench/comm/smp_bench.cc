// smp-bench: collective bandwidth in the style of nccl-tests. For each
// size of a sweep: time per operation (median of repetitions, each the
// slowest rank's mean over its iterations), algbw = bytes / time, busbw
// with nccl-tests' factors. --compare-mpi times the same operation through
// MPI directly in the same run, interleaved rep by rep with smp's.
//
//   mpirun -np 2 smp-bench --op all --compare-mpi
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "smp/smp.h"
#include "topo/layout.h"
#include "timing.h"

namespace {

using smp::bench::median;

struct Args {
  std::string op = "all", group = "world", dtype = "float32", redop = "sum";
  size_t min_bytes = 8, max_bytes = 64 << 20;
  int factor = 2, reps = 7, warmup = 2;
  double rep_seconds = 0.02;  // iterations per rep: about this long
  bool compare_mpi = false;
};

const std::map<std::string, smp_group_t> kGroups = {
    {"world", SMP_WORLD}, {"pp", SMP_PP_GROUP}, {"tp", SMP_TP_GROUP},
    {"dp", SMP_DP_GROUP}, {"rdp", SMP_RDP_GROUP}, {"mp", SMP_MP_GROUP}};
const std::map<std::string, std::pair<smp_dtype_t, MPI_Datatype>> kTypes = {
    {"float32", {SMP_FLOAT32, MPI_FLOAT}}, {"float64", {SMP_FLOAT64, MPI_DOUBLE}},
    {"bfloat16", {SMP_BFLOAT16, MPI_DATATYPE_NULL}}, {"float16", {SMP_FLOAT16, MPI_DATATYPE_NULL}},
    {"int32", {SMP_INT32, MPI_INT32_T}}, {"int64", {SMP_INT64, MPI_INT64_T}}};
const std::map<std::string, std::pair<smp_op_t, MPI_Op>> kOps = {
    {"sum", {SMP_SUM, MPI_SUM}}, {"max", {SMP_MAX, MPI_MAX}}, {"min", {SMP_MIN, MPI_MIN}},
    {"prod", {SMP_PROD, MPI_PROD}}};

void check(smp_status_t st, const char *what) {
  if (st != SMP_SUCCESS) {
    std::fprintf(stderr, "smp-bench: %s: %s\n", what, smp_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

// Seconds per call of fn: `iters` calls between barriers; the slowest rank.
double time_once(MPI_Comm comm, int iters, const std::function<void()> &fn) {
  MPI_Barrier(comm);
  const double t0 = MPI_Wtime();
  for (int i = 0; i < iters; ++i) fn();
  double t = (MPI_Wtime() - t0) / iters, worst = 0;
  MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
  return worst;
}

struct Op {
  std::string name;
  double bus_factor;         // busbw = algbw * factor (nccl-tests)
  size_t in_elems, out_elems;  // per rank, for `bytes` of the op
};

}  // namespace

int main(int argc, char **argv) {
  Args a;
  CLI::App app{"smp-bench: collective bandwidth (nccl-tests style); run under mpirun or smprun"};
  app.add_option("--op", a.op, "allreduce | reduce_scatter | allgather | broadcast | sendrecv | all")
      ->check(CLI::IsMember({"allreduce", "reduce_scatter", "allgather", "broadcast", "sendrecv", "all"}));
  app.add_option("--group", a.group, "world | pp | tp | dp | rdp | mp")->check(CLI::IsMember({"world", "pp", "tp", "dp", "rdp", "mp"}));
  app.add_option("--dtype", a.dtype, "float32 | float64 | bfloat16 | float16 | int32 | int64")
      ->check(CLI::IsMember({"float32", "float64", "bfloat16", "float16", "int32", "int64"}));
  app.add_option("--redop", a.redop, "sum | max | min | prod")->check(CLI::IsMember({"sum", "max", "min", "prod"}));
  app.add_option("-b,--min-bytes", a.min_bytes, "smallest size (default 8)")->check(CLI::PositiveNumber);
  app.add_option("-e,--max-bytes", a.max_bytes, "largest size (default 64 MiB)")->check(CLI::PositiveNumber);
  app.add_option("-f,--factor", a.factor, "size multiplier between steps (default 2)")->check(CLI::Range(2, 1024));
  app.add_option("-r,--reps", a.reps, "repetitions per size; the median is reported (default 7)")->check(CLI::Range(1, 1000));
  app.add_option("-w,--warmup", a.warmup, "untimed repetitions first (default 2)")->check(CLI::Range(0, 1000));
  app.add_option("--rep-seconds", a.rep_seconds, "target length of one repetition (default 0.02)")->check(CLI::PositiveNumber);
  app.add_flag("--compare-mpi", a.compare_mpi, "also time the same operation through MPI directly");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    std::fprintf(stderr, "smp-bench: %s\n", e.what());
    return 2;
  }
  if (a.min_bytes > a.max_bytes) {
    std::fprintf(stderr, "smp-bench: --min-bytes %zu is larger than --max-bytes %zu\n", a.min_bytes, a.max_bytes);
    return 2;
  }

  check(smp_init(nullptr), "smp_init");
  const smp_group_t g = kGroups.at(a.group);
  const auto [st, mt] = kTypes.at(a.dtype);
  const auto [sop, mop] = kOps.at(a.redop);
  const bool mpi_can = a.compare_mpi && mt != MPI_DATATYPE_NULL;
  int rank = 0, n = 1, world_rank = 0, world_size = 1;
  smp_rank(g, &rank);
  smp_size(g, &n);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  // The MPI baseline runs on the same group: split by the layout's colour.
  const char *pp = std::getenv("SMP_PP_SIZE"), *tp = std::getenv("SMP_TP_SIZE"), *pl = std::getenv("SMP_PLACEMENT");
  const smp::topo::Layout layout(world_size, pp ? std::atoi(pp) : 1, tp ? std::atoi(tp) : 1,
                                 pl ? smp::topo::Placement::parse(pl) : smp::topo::Placement());
  MPI_Comm comm;
  MPI_Comm_split(MPI_COMM_WORLD, layout.group_color(static_cast<smp::topo::Group>(g), world_rank), world_rank, &comm);

  const smp_dtype_t dts = st;
  const size_t es = (dts == SMP_FLOAT64 || dts == SMP_INT64) ? 8 : (dts == SMP_BFLOAT16 || dts == SMP_FLOAT16) ? 2 : 4;

  std::vector<std::string> ops;
  if (a.op == "all") ops = {"allreduce", "reduce_scatter", "allgather", "broadcast", "sendrecv"};
  else ops = {a.op};

  const size_t max_elems = a.max_bytes / es + n;
  std::vector<char> in((max_elems + 1) * es), out((max_elems + 1) * es), ref((max_elems + 1) * es);
  for (size_t i = 0; i < in.size() / 4; ++i) {
    const float v = static_cast<float>((i + static_cast<size_t>(rank)) % 7);
    if (es == 4 && dts == SMP_FLOAT32) std::memcpy(&in[i * 4], &v, 4);
    else in[i * 4] = static_cast<char>(v);
  }
  const int next = (rank + 1) % n, prev = (rank + n - 1) % n;

  for (const std::string &name : ops) {
    const double bus = name == "allreduce" ? 2.0 * (n - 1) / n
                       : (name == "reduce_scatter" || name == "allgather") ? static_cast<double>(n - 1) / n
                                                                             : 1.0;
    const bool have_mpi = mpi_can || (a.compare_mpi && name != "allreduce" && name != "reduce_scatter");
    if (world_rank == 0) {
      std::printf("# smp-bench %s  group=%s (%d ranks)  dtype=%s  redop=%s  time: median of %d reps, slowest rank\n",
                  name.c_str(), a.group.c_str(), n, a.dtype.c_str(), a.redop.c_str(), a.reps);
      std::printf("# %12s %12s %11s %9s %9s", "size(B)", "count", "time(us)", "algbw", "busbw");
      if (have_mpi) std::printf(" %11s %9s %7s", "mpi(us)", "mpi busbw", "ratio");
      std::printf("   (GB/s)\n");
    }
    for (size_t bytes = a.min_bytes; bytes <= a.max_bytes; bytes *= static_cast<size_t>(a.factor)) {
      // nccl-tests' size: the op's full buffer (reduce_scatter: the input,
      // allgather: the output), count: elements of that buffer.
      size_t count = std::max<size_t>(1, bytes / es);
      if (name == "reduce_scatter" || name == "allgather") count = std::max<size_t>(1, count / n) * n;
      const size_t size = count * es;
      const size_t per = count / static_cast<size_t>(n);  // block of reduce_scatter / allgather
      std::function<void()> run_smp, run_mpi;
      if (name == "allreduce") {
        run_smp = [&] { check(smp_allreduce(in.data(), out.data(), count, dts, sop, g, nullptr), "allreduce"); };
        run_mpi = [&] { MPI_Allreduce(in.data(), ref.data(), static_cast<int>(count), mt, mop, comm); };
      } else if (name == "reduce_scatter") {
        run_smp = [&] { check(smp_reduce_scatter(in.data(), out.data(), per, dts, sop, g, nullptr), "reduce_scatter"); };
        run_mpi = [&] { MPI_Reduce_scatter_block(in.data(), ref.data(), static_cast<int>(per), mt, mop, comm); };
      } else if (name == "allgather") {
        MPI_Datatype mv = es == 2 ? MPI_UINT16_T : mt;
        run_smp = [&] { check(smp_allgather(in.data(), out.data(), per, dts, g, nullptr), "allgather"); };
        run_mpi = [&, mv] { MPI_Allgather(in.data(), static_cast<int>(per), mv, ref.data(), static_cast<int>(per), mv, comm); };
      } else if (name == "broadcast") {
        MPI_Datatype mv = es == 2 ? MPI_UINT16_T : mt;
        run_smp = [&] { check(smp_broadcast(out.data(), count, dts, 0, g, nullptr), "broadcast"); };
        run_mpi = [&, mv] { MPI_Bcast(ref.data(), static_cast<int>(count), mv, 0, comm); };
      } else {  // sendrecv: every rank sends to the next, receives from the previous
        MPI_Datatype mv = es == 2 ? MPI_UINT16_T : mt;
        run_smp = [&] {
          smp_request_t r;
          check(smp_irecv(out.data(), count, dts, prev, g, 0, nullptr, &r), "irecv");
          check(smp_send(in.data(), count, dts, next, g, 0, nullptr), "send");
          check(smp_wait(r), "wait");
        };
        run_mpi = [&, mv] {
          MPI_Sendrecv(in.data(), static_cast<int>(count), mv, next, 0, ref.data(), static_cast<int>(count), mv, prev, 0,
                       comm, MPI_STATUS_IGNORE);
        };
      }
      // Iterations per rep from one timed call, agreed by all ranks.
      double one = time_once(comm, 1, run_smp);
      int iters = static_cast<int>(std::clamp(a.rep_seconds / std::max(one, 1e-7), 1.0, 2000.0));
      MPI_Bcast(&iters, 1, MPI_INT, 0, comm);
      std::vector<double> ts, tm;
      for (int rep = 0; rep < a.warmup + a.reps; ++rep) {
        // Alternate which goes first, so neither always inherits the
        // other's cache and scheduler state.
        double t = 0, u = 0;
        if (rep % 2 == 0 || !have_mpi) {
          t = time_once(comm, iters, run_smp);
          if (have_mpi) u = time_once(comm, iters, run_mpi);
        } else {
          u = time_once(comm, iters, run_mpi);
          t = time_once(comm, iters, run_smp);
        }
        if (rep >= a.warmup) { ts.push_back(t); tm.push_back(u); }
      }
      // The result must match MPI's (reductions of small integers are exact).
      bool same = true;
      if (have_mpi && name != "broadcast") {
        const size_t out_bytes = name == "allreduce" ? size : name == "reduce_scatter" ? per * es : size;
        int diff = std::memcmp(out.data(), ref.data(), out_bytes) != 0, any = 0;
        MPI_Allreduce(&diff, &any, 1, MPI_INT, MPI_MAX, comm);
        same = any == 0;
      }
      const double t = median(ts), u = have_mpi ? median(tm) : 0;
      const double alg = size / t / 1e9;
      if (world_rank == 0) {
        std::printf("  %12zu %12zu %11.2f %9.3f %9.3f", size, count, t * 1e6, alg, alg * bus);
        if (have_mpi) std::printf(" %11.2f %9.3f %7.2f", u * 1e6, size / u / 1e9 * bus, u / t);
        std::printf("%s\n", same ? "" : "  RESULT DIFFERS FROM MPI");
      }
      if (!same) MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
  MPI_Comm_free(&comm);
  check(smp_finalize(), "smp_finalize");
  return 0;
}
