// The staged backend over the real MPI backend, under mpirun (1, 2 and 3
// ranks), with host memory standing in for device memory (the deferred
// host copy engine: a copy happens only once a wait covers it). Every
// collective and point-to-point call, every dtype, counts around the chunk
// size, in place and not: the bytes must equal those of the MPI backend
// alone on the same inputs (reduce-scatter also on arbitrary bits: its
// device reduction keeps the host's order; blocks of 8 KiB and more reduce
// on the device, smaller ones on the host). So the chunking matches across
// ranks and the staged path adds nothing to the result; and staged
// point-to-point meets plain host point-to-point (a CUDA sender, a host
// receiver).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "comm/mpi/mpi_backend.h"
#include "comm/staged/host_copy_engine.h"
#include "comm/staged/staged_backend.h"
#include "exact_inputs.h"

namespace {

using smp::DType;
using smp::comm::ReduceOp;

int g_rank = 0, g_failures = 0;

void expect(bool ok, const std::string &what) {
  if (!ok && ++g_failures <= 20) std::fprintf(stderr, "rank %d: FAIL %s\n", g_rank, what.c_str());
}

}  // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  uint64_t seed = std::random_device{}();
  MPI_Bcast(&seed, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  std::mt19937_64 rng(seed * 31 + static_cast<uint64_t>(g_rank));
  constexpr size_t kChunkBytes = 4096;
  {
    auto engine = std::make_shared<smp::comm::staged::HostCopyEngine>(/*deferred=*/true);
    // As smp_init wires them: point-to-point through the group's host backend.
    smp::comm::mpi::MpiBackend host(MPI_COMM_WORLD, 1 << 30);
    smp::comm::staged::StagedBackend staged(std::make_unique<smp::comm::mpi::MpiBackend>(MPI_COMM_WORLD, 1 << 30),
                                            g_rank, size, engine, kChunkBytes, &host,
                                            /*device_reduce_min_bytes=*/2 * kChunkBytes);
    const int next = (g_rank + 1) % size, prev = (g_rank + size - 1) % size;
    for (int ti = 0; ti < smp::kNumDTypes; ++ti) {
      const auto t = static_cast<DType>(ti);
      const size_t es = smp::dtype_size(t);
      for (size_t n : {size_t{0}, size_t{1}, kChunkBytes / es, kChunkBytes / es + 1, size_t{10007}}) {
        const std::string tn = std::string(smp::dtype_name(t)) + " n=" + std::to_string(n);
        for (int oi = 0; oi < smp::comm::kNumReduceOps; ++oi) {
          const auto op = static_cast<ReduceOp>(oi);
          const std::string on = tn + " " + smp::comm::reduce_op_name(op);
          auto in = smp::testing::exact_inputs(rng, t, n);
          std::vector<char> a(in.size(), 1), b(in.size(), 2), c = in, d = in;
          host.allreduce(in.data(), a.data(), n, t, op, nullptr);
          staged.allreduce(in.data(), b.data(), n, t, op, nullptr);
          expect(a == b, "allreduce " + on);
          staged.allreduce(c.data(), c.data(), n, t, op, nullptr);
          expect(a == c, "allreduce in place " + on);
          auto rin = smp::testing::exact_inputs(rng, t, n * size);
          std::vector<char> ra(n * es, 1), rb(n * es, 2), rc = rin;
          host.reduce_scatter(rin.data(), ra.data(), n, t, op, nullptr);
          staged.reduce_scatter(rin.data(), rb.data(), n, t, op, nullptr);
          expect(ra == rb, "reduce_scatter " + on);
          staged.reduce_scatter(rc.data(), rc.data() + g_rank * n * es, n, t, op, nullptr);
          expect(std::equal(ra.begin(), ra.end(), rc.begin() + static_cast<std::ptrdiff_t>(g_rank * n * es)),
                 "reduce_scatter in place " + on);
          // The device reduction combines in the host path's order, so even
          // arbitrary bits (rounding everywhere, NaNs, overflow) agree.
          std::vector<char> bits(n * size * es), ba(n * es, 1), bb(n * es, 2);
          for (auto &c : bits) c = static_cast<char>(rng());
          host.reduce_scatter(bits.data(), ba.data(), n, t, op, nullptr);
          staged.reduce_scatter(bits.data(), bb.data(), n, t, op, nullptr);
          expect(ba == bb, "reduce_scatter of arbitrary bits " + on);
        }
        auto in = smp::testing::exact_inputs(rng, t, n);
        std::vector<char> ga(n * es * size, 1), gb(n * es * size, 2);
        host.allgather(in.data(), ga.data(), n, t, nullptr);
        staged.allgather(in.data(), gb.data(), n, t, nullptr);
        expect(ga == gb, "allgather " + tn);
        std::vector<char> gc(n * es * size, 3);
        if (n) std::memcpy(gc.data() + g_rank * n * es, in.data(), n * es);
        staged.allgather(gc.data() + g_rank * n * es, gc.data(), n, t, nullptr);
        expect(ga == gc, "allgather in place " + tn);
        std::vector<char> ba = in, bb = in;
        host.broadcast(ba.data(), n, t, size - 1, nullptr);
        staged.broadcast(bb.data(), n, t, size - 1, nullptr);
        expect(ba == bb, "broadcast " + tn);
        // gatherv to rank 0: rank r sends n + r elements.
        std::vector<size_t> counts(static_cast<size_t>(size));
        size_t total = 0;
        for (int r = 0; r < size; ++r) total += (counts[r] = n + static_cast<size_t>(r));
        auto mine = smp::testing::exact_inputs(rng, t, n + static_cast<size_t>(g_rank));
        std::vector<char> va(total * es, 1), vb(total * es, 2);
        host.gatherv(mine.data(), mine.size() / es, va.data(), counts.data(), t, 0, nullptr);
        staged.gatherv(mine.data(), mine.size() / es, vb.data(), counts.data(), t, 0, nullptr);
        if (g_rank == 0) expect(va == vb, "gatherv " + tn);
        // Ring: send to next, receive from prev. The reference is prev's
        // data over the MPI backend alone.
        std::vector<char> prev_data(n * es, 4);
        auto hq = host.irecv(prev_data.data(), n, t, prev, 9, nullptr);
        host.send(in.data(), n, t, next, 9, nullptr);
        hq->wait();
        std::vector<char> got(n * es, 5);
        auto rq = staged.irecv(got.data(), n, t, prev, 7, nullptr);
        staged.send(in.data(), n, t, next, 7, nullptr);
        rq->wait();
        expect(got == prev_data, "irecv/send ring " + tn);
        std::vector<char> got2(n * es, 6);
        auto sq = staged.isend(in.data(), n, t, next, 10, nullptr);
        staged.recv(got2.data(), n, t, prev, 10, nullptr);
        sq->wait();
        expect(got2 == prev_data, "isend/recv ring " + tn);
        // Mixed memory: "device" (staged) senders to host receivers and the
        // reverse must match (the H200 found them on different communicators).
        std::vector<char> got3(n * es, 7), got4(n * es, 8);
        auto mq = host.irecv(got3.data(), n, t, prev, 11, nullptr);
        staged.send(in.data(), n, t, next, 11, nullptr);
        mq->wait();
        expect(got3 == prev_data, "staged send -> host irecv ring " + tn);
        auto mq2 = staged.irecv(got4.data(), n, t, prev, 12, nullptr);
        auto ms2 = host.isend(in.data(), n, t, next, 12, nullptr);
        mq2->wait();
        ms2->wait();
        expect(got4 == prev_data, "host isend -> staged irecv ring " + tn);
      }
    }
    staged.barrier();
    expect(engine->live_allocations() > 0, "staging buffers kept for reuse");
  }
  int failures = g_failures;
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (g_rank == 0) std::printf("staged_mpi_test: %d ranks, %d failures (seed %llu)\n", size, failures,
                               static_cast<unsigned long long>(seed));
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
