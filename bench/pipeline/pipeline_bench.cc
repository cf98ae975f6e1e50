// Pipeline benchmarks, run under mpirun with one rank per stage:
//
//   transport: tensor send/recv (header + payload) against raw
//     Communicator send/recv of the same bytes, ping-pong between ranks 0
//     and 1, sizes 1 MiB and 64 MiB, methods interleaved round by round,
//     medians of the rounds.
//   schedule: the synthetic pipeline through the executor with real
//     tensors, every stage sleeping for its cost (2 cores cannot compute 8
//     stages at once). The simulator predicts the step from the same costs
//     plus the transfer time measured here (recv_tensor ping-pong of the
//     activation size); reported: measured / predicted, and the measured
//     bubble (1 - busy / (pp * step), busy = time actually slept) against
//     (p-1)/(m+p-1). The zero-bubble schedules (zb-h1, zb-v) sleep B and
//     W apart (--backward-input-ms, --backward-weight-ms; default half the
//     backward each); the others sleep B + W as one backward. Their
//     closed-form column: ZB-H1 (p-1)/(3m+p-1), ZB-V's floor
//     (p-1)/(6m+p-1), both for F = B = W.
//
// Usage: pipeline_bench transport | schedule [--forward-ms F] [--backward-ms B]
//        [--backward-input-ms B] [--backward-weight-ms W]
//        [--act-mib A] [--steps N] [--microbatches M,M,...]
//        [--kinds simple,interleaved,virtual,zb-h1,zb-v]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "comm/context.h"
#include "pipeline/executor.h"
#include "pipeline/simulate.h"

using namespace smp::pipeline;
using Clock = std::chrono::steady_clock;

namespace {

double now() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

constexpr DLDataType kU8{kDLUInt, 8, 1};

// One sample: `iters` round trips of `bytes` between ranks 0 and 1; returns
// seconds per one-way transfer. method 0: raw Communicator send/recv,
// 1: send_tensor / recv_tensor_into, 2: send_tensor / recv_tensor (allocating).
double pingpong(smp::comm::Communicator &comm, int method, size_t bytes, int iters,
                OwnedTensor &a, OwnedTensor &b) {
  const int rank = comm.rank();
  if (rank > 1) return 0;
  const int peer = 1 - rank;
  DLTensor va = a.view(), vb = b.view();
  auto send = [&] {
    if (method == 0)
      comm.send(a.data(), bytes, smp::DType::U8, peer, 10);
    else
      send_tensor(comm, va, peer, 10);
  };
  auto recv = [&] {
    if (method == 0)
      comm.recv(b.data(), bytes, smp::DType::U8, peer, 10);
    else if (method == 1)
      recv_tensor_into(comm, vb, peer, 10);
    else
      (void)recv_tensor(comm, peer, 10);
  };
  comm.send(nullptr, 0, smp::DType::U8, peer, 11);  // line up
  comm.recv(nullptr, 0, smp::DType::U8, peer, 11);
  const double t0 = now();
  for (int i = 0; i < iters; ++i) {
    if (rank == 0) {
      send();
      recv();
    } else {
      recv();
      send();
    }
  }
  return (now() - t0) / (2.0 * iters);
}

void transport(smp::comm::Communicator &comm) {
  const char *names[3] = {"raw send/recv", "send_tensor/recv_tensor_into", "send_tensor/recv_tensor (allocating)"};
  if (comm.rank() == 0) {
    std::printf("| size | %s GB/s | %s GB/s | ratio | %s GB/s | ratio |\n", names[0], names[1], names[2]);
    std::printf("|---|---|---|---|---|---|\n");
  }
  for (size_t mib : {1, 64}) {
    const size_t bytes = mib << 20;
    OwnedTensor a(kU8, {static_cast<int64_t>(bytes)}), b(kU8, {static_cast<int64_t>(bytes)});
    std::memset(a.data(), 1, bytes);
    std::memset(b.data(), 2, bytes);
    const int iters = mib == 1 ? 100 : 4, rounds = mib == 1 ? 15 : 9;
    std::vector<double> t[3];
    for (int m = 0; m < 3; ++m) pingpong(comm, m, bytes, 2, a, b);  // warm up
    for (int r = 0; r < rounds; ++r)
      for (int m = 0; m < 3; ++m) t[m].push_back(pingpong(comm, m, bytes, iters, a, b));
    if (comm.rank() == 0) {
      double bw[3];
      for (int m = 0; m < 3; ++m) bw[m] = bytes / median(t[m]) / 1e9;
      std::printf("| %zu MiB | %.2f | %.2f | %.3f | %.2f | %.3f |\n", mib, bw[0], bw[1], bw[1] / bw[0], bw[2],
                  bw[2] / bw[0]);
    }
    comm.barrier();
  }
}

void sleep_for(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

struct StepResult {
  double step = 0;  // max over ranks
  double busy = 0;  // sum over ranks of slept time
  // per stage: mean measured forward / backward (B + W) / B / W of one chunk
  std::vector<double> fwd, bwd, bin, bw;
};

// Costs of one op: forward f, backward-input bi, backward-weight bw (one
// microbatch, the whole stage; split evenly over the chunks). A schedule
// that does not split its backward sleeps bi + bw in one backward.
StepResult run_one(smp::comm::Communicator &comm, const ScheduleParams &p, double f, double bi,
                   double bw, size_t act_bytes) {
  double busy = 0, fbusy = 0, bbusy = 0, wbusy = 0;
  const int64_t n = static_cast<int64_t>(act_bytes);
  const bool split = splits_backward(p.kind);
  StageFns fns;
  const double fc = f / p.chunks, bc = (split ? bi : bi + bw) / p.chunks, wc = bw / p.chunks;
  fns.forward = [&](int, int, ManagedTensor) {
    const double t0 = now();
    sleep_for(fc);
    busy += now() - t0;
    fbusy += now() - t0;
    return to_managed(OwnedTensor(kU8, {n}));
  };
  fns.backward = [&](int, int, ManagedTensor) {
    const double t0 = now();
    sleep_for(bc);
    busy += now() - t0;
    bbusy += now() - t0;
    return to_managed(OwnedTensor(kU8, {n}));
  };
  if (split)
    fns.backward_weight = [&](int, int) {
      const double t0 = now();
      sleep_for(wc);
      busy += now() - t0;
      wbusy += now() - t0;
    };
  comm.barrier();
  const double t0 = now();
  run_step(comm, p, fns);
  double mine = now() - t0, step = 0, total_busy = 0;
  comm.allreduce(&mine, &step, 1, smp::DType::F64, smp::comm::ReduceOp::Max);
  comm.allreduce(&busy, &total_busy, 1, smp::DType::F64, smp::comm::ReduceOp::Sum);
  const int pp = comm.size(), ops = p.microbatches * p.chunks;
  double mine3[3] = {fbusy / ops, bbusy / ops, wbusy / ops};
  std::vector<double> all(3 * static_cast<size_t>(pp));
  comm.allgather(mine3, all.data(), 3, smp::DType::F64);
  StepResult r{step, total_busy, {}, {}, {}, {}};
  for (int s = 0; s < pp; ++s) {
    r.fwd.push_back(all[3 * s]);
    r.bin.push_back(all[3 * s + 1]);
    r.bw.push_back(all[3 * s + 2]);
    r.bwd.push_back(all[3 * s + 1] + all[3 * s + 2]);
  }
  return r;
}

void schedule(smp::comm::Communicator &comm, double f, double bi, double bw, double act_mib, int steps,
              const std::vector<int> &mbs, const std::vector<std::string> &kinds) {
  const int pp = comm.size();
  const size_t act_bytes = static_cast<size_t>(act_mib * (1 << 20));
  // The transfer time the simulator gets: one allocating tensor transfer
  // of the activation size between neighbours, measured now.
  OwnedTensor a(kU8, {static_cast<int64_t>(act_bytes)}), bb(kU8, {static_cast<int64_t>(act_bytes)});
  std::memset(a.data(), 1, act_bytes);
  std::vector<double> tt;
  for (int r = 0; r < 7; ++r) tt.push_back(pingpong(comm, 2, act_bytes, 10, a, bb));
  double transfer = median(tt);
  comm.broadcast(&transfer, 1, smp::DType::F64, 0);
  if (comm.rank() == 0) {
    std::printf("pp=%d, forward %.1f ms, backward %.1f ms (input %.1f + weight %.1f) per microbatch and stage, "
                "activation %.2f MiB, measured transfer %.3f ms; medians of %d steps\n\n",
                pp, f * 1e3, (bi + bw) * 1e3, bi * 1e3, bw * 1e3, act_mib, transfer * 1e3, steps);
    std::printf("| schedule | pp | m | chunks | measured step ms | simulated ms | measured/simulated | "
                "measured bubble | simulated bubble | closed form | sleep overshoot | "
                "measured/simulated(measured op times) |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  }
  for (int m : mbs)
    for (const std::string &name : kinds) {
      ScheduleParams p;
      p.kind = parse_schedule_kind(name);
      p.pp = pp;
      p.microbatches = m;
      p.chunks = p.kind == ScheduleKind::Virtual || p.kind == ScheduleKind::ZbV ? 2 : 1;
      if (p.kind == ScheduleKind::Virtual && m % pp != 0) continue;
      if (splits_backward(p.kind) && (pp < 2 || m < pp)) continue;
      std::vector<double> step, bubble, over, ratio_measured;
      run_one(comm, p, f, bi, bw, act_bytes);  // warm up (allocator, connections)
      for (int s = 0; s < steps; ++s) {
        const StepResult r = run_one(comm, p, f, bi, bw, act_bytes);
        step.push_back(r.step);
        bubble.push_back(1.0 - r.busy / (pp * r.step));
        over.push_back(r.busy / (pp * m * (f + bi + bw)) - 1.0);
        // The same schedule simulated with this step's measured op times.
        const Simulation ms = simulate(build_all(p), Costs{r.fwd, r.bwd, transfer, transfer, r.bin, r.bw}, &p);
        ratio_measured.push_back(r.step / ms.step_time);
      }
      const double v = p.chunks;
      const std::vector<double> F(pp, f / v), B(pp, bi / v), W(pp, bw / v), BW(pp, (bi + bw) / v);
      const Simulation sim = simulate(build_all(p), Costs{F, BW, transfer, transfer, B, W}, &p);
      const double closed = p.kind == ScheduleKind::ZbH1  ? double(pp - 1) / (3 * m + pp - 1)
                            : p.kind == ScheduleKind::ZbV ? double(pp - 1) / (6 * m + pp - 1)
                                                          : double(pp - 1) / (v * m + pp - 1);
      if (comm.rank() == 0)
        std::printf("| %s | %d | %d | %d | %.1f | %.1f | %.3f | %.3f | %.3f | %.3f | %.1f%% | %.3f |\n",
                    schedule_kind_name(p.kind), pp, m, p.chunks, median(step) * 1e3, sim.step_time * 1e3,
                    median(step) / sim.step_time, median(bubble), sim.bubble_fraction, closed,
                    100 * median(over), median(ratio_measured));
    }
}

}  // namespace

int main(int argc, char **argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  smp::comm::Options o;
  o.pp_size = size;
  smp::comm::Context &ctx = smp::comm::Context::init(o);
  smp::comm::Communicator &comm = ctx.group(smp::topo::Group::PP);
  double f = 10, b = 20, bi = -1, bw = -1, act = 1.0;  // costs in ms until converted below
  int steps = 5;
  std::vector<int> mbs{8, 16};
  std::vector<std::string> kinds{"simple", "interleaved", "virtual"};
  CLI::App app{"pipeline_bench: tensor transport and schedules against the simulator"};
  app.require_subcommand(1);
  app.add_subcommand("transport", "tensor send/recv against raw send/recv (needs 2 ranks or more)");
  CLI::App *sched = app.add_subcommand("schedule", "the synthetic pipeline against the simulator");
  sched->add_option("--forward-ms", f)->check(CLI::NonNegativeNumber);
  sched->add_option("--backward-ms", b)->check(CLI::NonNegativeNumber);
  sched->add_option("--backward-input-ms", bi)->check(CLI::NonNegativeNumber);
  sched->add_option("--backward-weight-ms", bw)->check(CLI::NonNegativeNumber);
  sched->add_option("--act-mib", act)->check(CLI::NonNegativeNumber);
  sched->add_option("--steps", steps)->check(CLI::PositiveNumber);
  sched->add_option("--microbatches", mbs)->delimiter(',')->check(CLI::PositiveNumber);
  sched->add_option("--kinds", kinds)->delimiter(',');
  if (const int code = smp::bench::parse(app, argc, argv); code >= 0) {
    smp::comm::Context::finalize();
    MPI_Finalize();
    return code;
  }
  const std::string what = app.get_subcommands().front()->get_name();
  f /= 1e3, b /= 1e3;
  if (bi >= 0) bi /= 1e3;
  if (bw >= 0) bw /= 1e3;
  int rc = 0;
  if (what == "transport" && size >= 2) {
    transport(comm);
  } else if (what == "schedule") {
    // B and W: given, else half the backward each; given both, they are
    // the backward.
    if (bi < 0 && bw < 0) bi = bw = b / 2;
    else if (bi < 0) bi = b - bw;
    else if (bw < 0) bw = b - bi;
    try {
      schedule(comm, f, bi, bw, act, steps, mbs, kinds);
    } catch (const smp::Error &e) {
      if (ctx.world_rank() == 0) std::fprintf(stderr, "pipeline_bench: %s\n", e.what());
      rc = 2;
    }
  } else {
    if (ctx.world_rank() == 0)
      std::fprintf(stderr, "pipeline_bench: transport needs 2 ranks or more (mpirun -np 2)\n");
    rc = 2;
  }
  smp::comm::Context::finalize();
  MPI_Finalize();
  return rc;
}
