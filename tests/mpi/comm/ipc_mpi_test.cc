// The IPC backend under mpirun (2, 3 and 4 ranks), with POSIX shared memory
// standing in for CUDA IPC segments (shm_memory.h: every copy and reduction
// runs late, at the next synchronize). Every collective, every dtype and
// op, counts around the chunk size, in place and not: the bytes must equal
// those of the MPI backend alone on the same inputs (exact_inputs.h; for
// reduce-scatter also arbitrary bits, whose result depends on the order), and
// the IPC path must really have run; again with the odd ranks running
// their device work late (a half refilled too early shows). Then the groups that must decline,
// together and with the same reason, and still give the right results
// through the fallback: ranks on different "devices", one rank failing to
// allocate, one failing to map a peer's segment; a backend that requires
// IPC fails instead. No shm object may be left.
#include <dirent.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "comm/ipc/ipc_backend.h"
#include "comm/mpi/mpi_backend.h"
#include "comm/mpi/mpi_bootstrap.h"
#include "common/error.h"
#include "exact_inputs.h"
#include "shm_memory.h"

namespace {

using smp::DType;
using smp::comm::ReduceOp;
using smp::comm::ipc::IpcBackend;
using smp::comm::ipc::testing::ShmMemory;

int g_rank = 0, g_size = 1, g_failures = 0;

void expect(bool ok, const std::string &what) {
  if (!ok && ++g_failures <= 20) std::fprintf(stderr, "rank %d: FAIL %s\n", g_rank, what.c_str());
}

// 512 bytes per half: the smallest the backend takes, so that even the
// small counts here run in many chunks.
constexpr size_t kChunkBytes = 512;

std::unique_ptr<IpcBackend> make_ipc(std::shared_ptr<ShmMemory> mem, bool required = false, size_t min_bytes = 0) {
  return std::make_unique<IpcBackend>(std::make_unique<smp::comm::mpi::MpiBootstrap>(MPI_COMM_WORLD, "ipc test"),
                                      std::move(mem),
                                      std::make_unique<smp::comm::mpi::MpiBackend>(MPI_COMM_WORLD, 1 << 30),
                                      kChunkBytes, g_rank, required, min_bytes);
}

// Calls moving fewer than min_bytes go to the fallback (no shared-memory
// work), larger ones through the segments; the results are the host's
// either way. What counts: the input of an allreduce or reduce-scatter.
void check_min_bytes(smp::comm::Backend &host, std::mt19937_64 &rng) {
  const size_t S = static_cast<size_t>(g_size), min_elems = 1024;  // float32: 4096 bytes
  auto mem = std::make_shared<ShmMemory>("one-device");
  auto ipc = make_ipc(mem, /*required=*/false, min_elems * 4);
  auto through_segments = [&](auto &&call) {
    const int before = mem->synchronizations;
    call();
    return mem->synchronizations > before;
  };
  const size_t rc_big = (min_elems + S - 1) / S;  // rc_big * S >= min_elems > (rc_big - 1) * S
  for (bool big : {false, true}) {
    const std::string b = big ? " at min_bytes" : " below min_bytes";
    const size_t n = big ? min_elems : min_elems - 1, rc = big ? rc_big : rc_big - 1;
    auto in = smp::testing::exact_inputs(rng, DType::F32, std::max(n, rc * S));
    std::vector<char> a(n * 4, 1), c(n * 4, 2), ra(rc * 4, 1), rb(rc * 4, 2);
    host.allreduce(in.data(), a.data(), n, DType::F32, ReduceOp::Sum, nullptr);
    expect(through_segments([&] { ipc->allreduce(in.data(), c.data(), n, DType::F32, ReduceOp::Sum, nullptr); }) == big,
           "allreduce" + b + (big ? ": not" : ": wrongly") + " through the segments");
    expect(a == c, "allreduce" + b);
    host.reduce_scatter(in.data(), ra.data(), rc, DType::F32, ReduceOp::Sum, nullptr);
    expect(through_segments([&] { ipc->reduce_scatter(in.data(), rb.data(), rc, DType::F32, ReduceOp::Sum, nullptr); }) == big,
           "reduce_scatter" + b + (big ? ": not" : ": wrongly") + " through the segments");
    expect(ra == rb, "reduce_scatter" + b);
  }
}

// SMP_CUDA_IPC=require: a group that declines fails on every rank, on every
// collective, instead of falling back.
void check_required_fails() {
  auto ipc = make_ipc(std::make_shared<ShmMemory>(g_rank == 0 ? "device-a" : "device-b"), /*required=*/true);
  std::vector<float> x(64, 1.0f);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string what;
    try {
      ipc->allreduce(x.data(), x.data(), x.size(), DType::F32, ReduceOp::Sum, nullptr);
    } catch (const smp::Error &e) {
      what = e.what();
    }
    expect(what.find("CUDA IPC required (SMP_CUDA_IPC=require) but not used: ranks 0 and 1") != std::string::npos,
           "required: call " + std::to_string(attempt) + " fails, got '" + what + "'");
  }
}

// Every collective of `ipc` against `host` on the same inputs.
void check_collectives(IpcBackend &ipc, smp::comm::Backend &host, std::mt19937_64 &rng, const std::string &label,
                       bool all_dtypes) {
  const int size = g_size;
  for (int ti = 0; ti < smp::kNumDTypes; ++ti) {
    const auto t = static_cast<DType>(ti);
    if (!all_dtypes && t != DType::F32 && t != DType::BF16) continue;
    const size_t es = smp::dtype_size(t);
    for (size_t n : {size_t{0}, size_t{1}, kChunkBytes / es, kChunkBytes / es + 1, size_t{2011}}) {
      const std::string tn = label + " " + smp::dtype_name(t) + " n=" + std::to_string(n);
      for (int oi = 0; oi < smp::comm::kNumReduceOps; ++oi) {
        const auto op = static_cast<ReduceOp>(oi);
        const std::string on = tn + " " + smp::comm::reduce_op_name(op);
        auto in = smp::testing::exact_inputs(rng, t, n);
        std::vector<char> a(in.size(), 1), b(in.size(), 2), c = in;
        host.allreduce(in.data(), a.data(), n, t, op, nullptr);
        ipc.allreduce(in.data(), b.data(), n, t, op, nullptr);
        expect(a == b, "allreduce " + on);
        ipc.allreduce(c.data(), c.data(), n, t, op, nullptr);
        expect(a == c, "allreduce in place " + on);
        auto rin = smp::testing::exact_inputs(rng, t, n * size);
        std::vector<char> ra(n * es, 1), rb(n * es, 2), rc = rin, rd = rin;
        host.reduce_scatter(rin.data(), ra.data(), n, t, op, nullptr);
        ipc.reduce_scatter(rin.data(), rb.data(), n, t, op, nullptr);
        expect(ra == rb, "reduce_scatter " + on);
        ipc.reduce_scatter(rc.data(), rc.data() + g_rank * n * es, n, t, op, nullptr);
        expect(std::equal(ra.begin(), ra.end(), rc.begin() + static_cast<std::ptrdiff_t>(g_rank * n * es)),
               "reduce_scatter in place (own block) " + on);
        ipc.reduce_scatter(rd.data(), rd.data(), n, t, op, nullptr);
        expect(std::equal(ra.begin(), ra.end(), rd.begin()), "reduce_scatter in place (front) " + on);
        // The kernel combines in the host reduce-scatter's order (own block,
        // rank-1, rank-2, ...), so even arbitrary bits (rounding, NaNs,
        // overflow) give the host's bytes (seen on an H200 when it summed in
        // member order: the last bits of float sums differed).
        std::vector<char> bits(n * size * es), ba(n * es, 1), bb(n * es, 2);
        for (auto &x : bits) x = static_cast<char>(rng());
        host.reduce_scatter(bits.data(), ba.data(), n, t, op, nullptr);
        ipc.reduce_scatter(bits.data(), bb.data(), n, t, op, nullptr);
        expect(ba == bb, "reduce_scatter of arbitrary bits " + on);
      }
      auto in = smp::testing::exact_inputs(rng, t, n);
      std::vector<char> ga(n * es * size, 1), gb(n * es * size, 2), gc(n * es * size, 3);
      host.allgather(in.data(), ga.data(), n, t, nullptr);
      ipc.allgather(in.data(), gb.data(), n, t, nullptr);
      expect(ga == gb, "allgather " + tn);
      if (n) std::memcpy(gc.data() + g_rank * n * es, in.data(), n * es);
      ipc.allgather(gc.data() + g_rank * n * es, gc.data(), n, t, nullptr);
      expect(ga == gc, "allgather in place " + tn);
      for (int root : {0, size - 1}) {
        std::vector<char> ba = in, bb = in;
        host.broadcast(ba.data(), n, t, root, nullptr);
        ipc.broadcast(bb.data(), n, t, root, nullptr);
        expect(ba == bb, "broadcast root " + std::to_string(root) + " " + tn);
      }
      // gatherv and point-to-point go to the fallback.
      std::vector<size_t> counts(static_cast<size_t>(size));
      size_t total = 0;
      for (int r = 0; r < size; ++r) total += (counts[static_cast<size_t>(r)] = n + static_cast<size_t>(r));
      auto mine = smp::testing::exact_inputs(rng, t, n + static_cast<size_t>(g_rank));
      std::vector<char> va(total * es, 1), vb(total * es, 2);
      host.gatherv(mine.data(), mine.size() / es, va.data(), counts.data(), t, 0, nullptr);
      ipc.gatherv(mine.data(), mine.size() / es, vb.data(), counts.data(), t, 0, nullptr);
      if (g_rank == 0) expect(va == vb, "gatherv " + tn);
      const int next = (g_rank + 1) % size, prev = (g_rank + size - 1) % size;
      std::vector<char> want(n * es, 4), got(n * es, 5);
      auto hq = host.irecv(want.data(), n, t, prev, 9, nullptr);
      host.send(in.data(), n, t, next, 9, nullptr);
      hq->wait();
      auto rq = ipc.irecv(got.data(), n, t, prev, 7, nullptr);
      ipc.send(in.data(), n, t, next, 7, nullptr);
      rq->wait();
      expect(got == want, "irecv/send ring " + tn);
    }
  }
}

// A group that must decline: every rank gets `why_contains` in its
// refusal, the fallback gives the host's results, no copy ever ran.
void check_declines(std::shared_ptr<ShmMemory> mem, smp::comm::Backend &host, std::mt19937_64 &rng,
                    const std::string &label, const std::string &why_contains) {
  auto ipc = make_ipc(mem);
  auto in = smp::testing::exact_inputs(rng, DType::F32, 1000 * static_cast<size_t>(g_size));
  std::vector<char> a(in.size(), 1), b(in.size(), 2), ra(4000, 1), rb(4000, 2);
  host.allreduce(in.data(), a.data(), in.size() / 4, DType::F32, ReduceOp::Sum, nullptr);
  ipc->allreduce(in.data(), b.data(), in.size() / 4, DType::F32, ReduceOp::Sum, nullptr);
  expect(a == b, label + ": allreduce through the fallback");
  host.reduce_scatter(in.data(), ra.data(), 1000, DType::F32, ReduceOp::Max, nullptr);
  ipc->reduce_scatter(in.data(), rb.data(), 1000, DType::F32, ReduceOp::Max, nullptr);
  expect(ra == rb, label + ": reduce_scatter through the fallback");
  expect(ipc->refusal().find(why_contains) != std::string::npos,
         label + ": refusal '" + ipc->refusal() + "' should say '" + why_contains + "'");
  expect(mem->synchronizations == 0, label + ": no shared-memory work after declining");
  // Every rank declined with the same words.
  const std::string mine = ipc->refusal();
  smp::comm::mpi::MpiBootstrap boot(MPI_COMM_WORLD, "ipc test");
  for (const auto &r : boot.allgatherv(mine)) expect(r == mine, label + ": same refusal on every rank");
}

// kAutoMinBytes: the group measures one tiny step with every member at
// once on setup; one member slow (1 ms a step, as when processes take turns
// on a GPU) makes the whole group keep calls under kTurnsMinBytes on the
// fallback. (The fast case is not asserted: on an oversubscribed machine a
// step may take longer than kTurnMicros; min_bytes_for_step's unit test
// covers it.)
void check_measured_min_bytes(smp::comm::Backend &host, std::mt19937_64 &rng) {
  using smp::comm::ipc::kAutoMinBytes;
  using smp::comm::ipc::kTurnsMinBytes;
  auto mem = std::make_shared<ShmMemory>("one-device");
  if (g_rank == 0) mem->delay = std::chrono::milliseconds(1);
  auto ipc = make_ipc(mem, /*required=*/false, kAutoMinBytes);
  expect(ipc->min_bytes() == kAutoMinBytes, "measured min_bytes: auto before setup");
  auto in = smp::testing::exact_inputs(rng, DType::F32, 1000);
  std::vector<char> a(in.size(), 1), b(in.size(), 2), c(in.size(), 3);
  host.allreduce(in.data(), a.data(), 1000, DType::F32, ReduceOp::Sum, nullptr);
  ipc->allreduce(in.data(), b.data(), 1000, DType::F32, ReduceOp::Sum, nullptr);  // sets up, measures
  expect(a == b, "measured min_bytes: allreduce");
  expect(ipc->min_bytes() == kTurnsMinBytes,
         "measured min_bytes: one slow member makes it " + std::to_string(ipc->min_bytes()) + " on every rank");
  const int before = mem->synchronizations;
  ipc->allreduce(in.data(), c.data(), 1000, DType::F32, ReduceOp::Sum, nullptr);
  expect(a == c && mem->synchronizations == before, "measured min_bytes: a small call goes to the fallback");
}

int leftover_segments() {
  const std::string prefix = "smp-ipc-test-" + std::to_string(getpid()) + "-";
  int n = 0;
  if (DIR *d = opendir("/dev/shm")) {
    while (dirent *e = readdir(d))
      if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) ++n;
    closedir(d);
  }
  return n;
}

}  // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  uint64_t seed = std::random_device{}();
  MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  std::mt19937_64 rng(seed * 31 + static_cast<uint64_t>(g_rank));
  {
    smp::comm::mpi::MpiBackend host(MPI_COMM_WORLD, 1 << 30);
    auto mem = std::make_shared<ShmMemory>("one-device");
    auto ipc = make_ipc(mem);
    check_collectives(*ipc, host, rng, "ipc", /*all_dtypes=*/true);
    expect(ipc->refusal().empty(), "one device: served, not '" + ipc->refusal() + "'");
    expect(mem->synchronizations > 0, "one device: the shared-memory path ran");
    // A second backend on the same group (smp_init makes one per
    // communicator duplicate) has its own segments.
    auto other = make_ipc(mem);
    check_collectives(*other, host, rng, "second backend", /*all_dtypes=*/false);

    check_min_bytes(host, rng);
    check_measured_min_bytes(host, rng);

    auto late = std::make_shared<ShmMemory>("one-device");
    if (g_rank % 2) late->delay = std::chrono::microseconds(300);
    auto uneven = make_ipc(late);
    check_collectives(*uneven, host, rng, "odd ranks late", /*all_dtypes=*/false);

    const int odd = g_size > 1 ? g_size - 1 : 0;  // the last rank is elsewhere
    check_declines(std::make_shared<ShmMemory>(g_rank == odd ? "device-b" : "device-a"), host, rng,
                   "different devices", "ranks 0 and " + std::to_string(odd) + " of the group use different devices");
    auto no_alloc = std::make_shared<ShmMemory>("one-device");
    no_alloc->fail_allocate = g_rank == g_size - 1;
    check_declines(no_alloc, host, rng, "allocation fails",
                   "rank " + std::to_string(g_size - 1) + " of the group could not allocate its segment: injected");
    auto no_open = std::make_shared<ShmMemory>("one-device");
    no_open->fail_open = g_rank == 0;
    check_declines(no_open, host, rng, "open fails", "rank 0 of the group could not map a peer's segment: opening rank 1");
    check_required_fails();
  }
  expect(leftover_segments() == 0, "every shm segment unlinked");
  int failures = g_failures;
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0)
    std::printf("ipc_mpi_test: %d ranks, %d failures (seed %llu)\n", g_size, failures,
                static_cast<unsigned long long>(seed));
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
