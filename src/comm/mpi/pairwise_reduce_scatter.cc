#include "comm/mpi/pairwise_reduce_scatter.h"

#include <cstring>
#include <vector>

#include "comm/mpi/mpi_util.h"
#include "comm/reduce.h"

namespace smp::comm::mpi {
namespace {

// Segment size and number of receive buffers: big enough that per-message
// costs vanish, small enough that a received segment is still in L2 when
// it is reduced (measured with smp-bench: 128-512 KiB are all within noise).
constexpr size_t kSegmentBytes = 256 << 10;
constexpr int kWindow = 4;

}  // namespace

void pairwise_reduce_scatter(MPI_Comm comm, int rank, int size, const void *send, void *out,
                             const size_t *counts, const size_t *displs, DType t, ReduceOp op) {
  const size_t es = dtype_size(t);
  const char *in = static_cast<const char *>(send);
  const size_t n = counts[rank];
  const char *own = in + displs[rank] * es;
  if (size == 1) {  // nothing to combine; AVG divides by 1
    if (out != own && n > 0) std::memmove(out, own, n * es);
    return;
  }
  const size_t seg = std::max<size_t>(1, kSegmentBytes / es);

  // Every send at once: they read the caller's input only.
  std::vector<MPI_Request> sends;
  for (int s = 1; s < size; ++s) {
    const int to = (rank + s) % size;
    const char *block = in + displs[to] * es;
    for (size_t off = 0; off < counts[to]; off += seg) {
      const size_t len = std::min(seg, counts[to] - off);
      sends.emplace_back();
      check_mpi(MPI_Isend(block + off * es, static_cast<int>(len * es), MPI_BYTE, to,
                          kTagReduceScatter, comm, &sends.back()),
                "reduce_scatter: MPI_Isend");
    }
  }

  // Receives: (step, segment) jobs in order; step s brings rank (rank-s)'s
  // contribution to our block. A window of buffers keeps kWindow in flight.
  const size_t nseg = (n + seg - 1) / seg;
  const size_t jobs = nseg * static_cast<size_t>(size - 1);
  thread_local std::vector<char> scratch;
  thread_local std::vector<float> wide;  // float32 accumulator of FLOAT16/BFLOAT16
  scratch.resize(kWindow * seg * es);
  void *acc = out;
  if (accumulates_in_float(t)) {
    wide.resize(n);
    acc = wide.data();
  }
  const size_t acc_es = accumulator_size(t);
  MPI_Request recvs[kWindow];
  auto post = [&](size_t job) {
    const int s = static_cast<int>(job / nseg) + 1;
    const size_t k = job % nseg;
    const int from = (rank - s + size) % size;
    const size_t len = std::min(seg, n - k * seg);
    check_mpi(MPI_Irecv(scratch.data() + (job % kWindow) * seg * es, static_cast<int>(len * es),
                        MPI_BYTE, from, kTagReduceScatter, comm, &recvs[job % kWindow]),
              "reduce_scatter: MPI_Irecv");
  };
  for (size_t j = 0; j < std::min<size_t>(jobs, kWindow); ++j) post(j);
  for (size_t j = 0; j < jobs; ++j) {
    check_mpi(MPI_Wait(&recvs[j % kWindow], MPI_STATUS_IGNORE), "reduce_scatter: MPI_Wait");
    const int s = static_cast<int>(j / nseg) + 1;
    const size_t k = j % nseg;
    const size_t off = k * seg;
    const size_t len = std::min(seg, n - off);
    const char *got = scratch.data() + (j % kWindow) * seg * es;
    char *a = static_cast<char *>(acc) + off * acc_es;
    if (s == 1)
      reduce_first(a, own + off * es, got, len, t, op);
    else
      reduce_accumulate(a, got, len, t, op);
    if (j + kWindow < jobs) post(j + kWindow);  // the buffer is free again
    if (s == size - 1)  // this segment is complete: divide / round once
      reduce_finish(static_cast<char *>(out) + off * es, a, len, t, op, size);
  }
  check_mpi(MPI_Waitall(static_cast<int>(sends.size()), sends.data(), MPI_STATUSES_IGNORE),
            "reduce_scatter: MPI_Waitall");
}

}  // namespace smp::comm::mpi
