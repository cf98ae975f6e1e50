// The timeline through the C API (run by check_timeline_capi.py): every
// runtime call of a small program (collectives, a non-blocking allreduce
// and its wait, a send / receive, the sharded optimizer) inside one
// framework mark "step", then smp_finalize, which writes the file. Linked
// against libsmp's objects, not the .so, so that it can count the events
// the recorder holds (trace::event_count, internal to the library):
//   (no argument)  SMP_TIMELINE set: exactly the calls' events are pending
//                  before smp_finalize; unset: none at any point.
//   --mismatch     SMP_CHECK=1 and a mismatched allreduce: every rank gets
//                  SMP_ERR_PEER_FAILED, and finalize must skip the write.
//   --write-early  smp_timeline_write, then a mark "after_write": finalize
//                  must not overwrite the written file.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "smp/smp.h"
#include "trace/timeline.h"

namespace {

int g_rank = -1;
bool g_finalized = false;

// After smp_finalize MPI is gone: exit non-zero instead (mpirun ends the job).
[[noreturn]] void die(int line, const std::string &what) {
  std::fprintf(stderr, "rank %d: timeline_capi_test.cc:%d: %s (%s)\n", g_rank, line, what.c_str(),
               smp_last_error());
  std::fflush(stderr);
  if (!g_finalized) MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}
#define OK(call) \
  do { \
    if ((call) != SMP_SUCCESS) die(__LINE__, #call); \
  } while (0)
#define CHECK(cond, what) \
  do { \
    if (!(cond)) die(__LINE__, what); \
  } while (0)

size_t pending() { return smp::trace::event_count(); }

}  // namespace

int main(int argc, char **argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool on = smp::trace::enabled();
  OK(smp_init(nullptr));
  int rank = 0, n = 0;
  OK(smp_rank(SMP_WORLD, &rank));
  OK(smp_size(SMP_WORLD, &n));
  g_rank = rank;
  CHECK(pending() == 0, "events before any runtime call");

  if (mode == "--mismatch") {
    std::vector<float> a(static_cast<size_t>(10 + rank), 1.0f);
    CHECK(smp_allreduce(a.data(), a.data(), a.size(), SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr) ==
              SMP_ERR_PEER_FAILED,
          "a mismatched allreduce under SMP_CHECK must fail on every rank");
    CHECK(!on || pending() == 1, "the failed allreduce is recorded");
    OK(smp_finalize());  // must return (no write: a rank saw a peer failure)
    g_finalized = true;
    CHECK(!on || pending() == 1, "finalize wrote (cleared) the events after a peer failure");
    return 0;
  }

  OK(smp_timeline_begin("step", -1, -1));
  std::vector<float> x(1000, 1.0f), rs(100), ia(256, 2.0f), p2p(10, 3.0f);
  std::vector<float> rs_in(100 * static_cast<size_t>(n), 1.0f);
  std::vector<double> ag_in(50, 1.0), ag(50 * static_cast<size_t>(n));
  std::vector<long long> b(7, rank == 0 ? 42 : 0);
  OK(smp_allreduce(x.data(), x.data(), x.size(), SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr));
  CHECK(x[0] == static_cast<float>(n), "allreduce result");
  OK(smp_reduce_scatter(rs_in.data(), rs.data(), rs.size(), SMP_FLOAT32, SMP_SUM, SMP_RDP_GROUP, nullptr));
  OK(smp_allgather(ag_in.data(), ag.data(), ag_in.size(), SMP_FLOAT64, SMP_RDP_GROUP, nullptr));
  OK(smp_broadcast(b.data(), b.size(), SMP_INT64, 0, SMP_WORLD, nullptr));
  CHECK(b[6] == 42, "broadcast result");
  OK(smp_barrier(SMP_WORLD));
  smp_request_t req = nullptr;
  OK(smp_iallreduce(ia.data(), ia.data(), ia.size(), SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr, &req));
  OK(smp_wait(req));
  // Polled to completion: one "test" event, however many polls it took.
  // Rank 1 sends only after the barrier, which rank 0 enters after five
  // polls, so those five cannot complete.
  std::vector<float> polled(16, 1.0f);
  if (rank == 0) {
    OK(smp_irecv(polled.data(), polled.size(), SMP_FLOAT32, 1, SMP_WORLD, 6, nullptr, &req));
    for (int i = 0; i < 5; ++i) {
      int done = 1;
      OK(smp_test(req, &done));
      CHECK(done == 0, "a receive completed before its send was posted");
    }
  }
  OK(smp_barrier(SMP_WORLD));
  if (rank == 1) OK(smp_send(polled.data(), polled.size(), SMP_FLOAT32, 0, SMP_WORLD, 6, nullptr));
  if (rank == 0)
    for (int done = 0; !done;) OK(smp_test(req, &done));
  if (rank == 0) OK(smp_send(p2p.data(), p2p.size(), SMP_FLOAT32, 1, SMP_WORLD, 5, nullptr));
  if (rank == 1) OK(smp_recv(p2p.data(), p2p.size(), SMP_FLOAT32, 0, SMP_WORLD, 5, nullptr));

  std::vector<float> param(1000, 0.5f), grad(1000, 0.25f);
  smp_optimizer_config_t cfg = SMP_OPTIMIZER_CONFIG_INIT;
  cfg.kind = SMP_SGD;
  cfg.lr = 0.1;
  cfg.group = SMP_RDP_GROUP;
  smp_optimizer_tensor_t t{};
  t.name = "w";
  t.count = param.size();
  t.dtype = SMP_FLOAT32;
  t.param = param.data();
  t.grad = grad.data();
  smp_optimizer_t opt = nullptr;
  OK(smp_optimizer_create(&cfg, &t, 1, &opt));
  OK(smp_optimizer_step(opt, 1.0, nullptr, nullptr));
  CHECK(std::fabs(param[0] - 0.475f) < 1e-6f, "sgd step result");
  OK(smp_optimizer_destroy(opt));
  OK(smp_timeline_end());

  // step, allreduce, reduce_scatter, allgather, broadcast, barrier,
  // iallreduce, wait, barrier, optimizer_create, optimizer_step; rank 0:
  // irecv, test (one, for six polls) and recv; rank 1: two sends.
  const size_t expect = 11 + (rank == 0 ? 3 : rank == 1 ? 2 : 0);
  CHECK(pending() == (on ? expect : 0), std::to_string(pending()) + " events pending, expected " +
                                            std::to_string(on ? expect : 0));
  if (mode == "--write-early") {
    OK(smp_timeline_write());
    CHECK(pending() == 0, "events left after smp_timeline_write");
    OK(smp_timeline_begin("after_write", -1, -1));
    OK(smp_timeline_end());
    CHECK(pending() == (on ? 1 : 0), "the mark after the write");
  }
  OK(smp_finalize());
  g_finalized = true;
  if (mode.empty()) CHECK(pending() == 0, std::to_string(pending()) + " events left unwritten by smp_finalize");
  return 0;
}
