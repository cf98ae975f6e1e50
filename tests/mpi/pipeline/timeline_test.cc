// Records a timeline (run with SMP_TIMELINE set; check_timeline.py checks
// the file): one 1F1B step of the synthetic pipeline through the executor,
// a framework mark around a fake optimizer step, and a send_tensor /
// recv_tensor pair, then write_timeline() over WORLD.
#include <cstring>
#include <string>

#include "mpi_check.h"
#include "pipeline/executor.h"
#include "pipeline/timeline.h"

using namespace smp::pipeline;

int main(int argc, char **argv) {
  smp::comm::Context &ctx = smp_test::init_pipeline_world(&argc, &argv);
  smp::comm::Communicator &comm = ctx.group(smp::topo::Group::PP);
  CHECK_MSG(timeline::enabled(), "run with SMP_TIMELINE set");
  const int pp = comm.size();
  ScheduleParams p;
  p.kind = ScheduleKind::Interleaved;
  p.pp = pp;
  p.microbatches = 2 * pp;
  StageFns fns;
  auto tensor = [](int mb) {
    OwnedTensor t(DLDataType{kDLFloat, 32, 1}, {1 + mb, 256});
    std::memset(t.data(), 0, t.nbytes());
    return t;
  };
  fns.forward = [&](int mb, int, ManagedTensor) { return to_managed(tensor(mb)); };
  fns.backward = [&](int mb, int, ManagedTensor) { return to_managed(tensor(mb)); };
  run_step(comm, p, fns);

  timeline::Args a;
  a.microbatch = -1;
  timeline::begin("optimizer_step", a);
  timeline::begin("allreduce_grads", a);  // nested
  timeline::end();
  timeline::end();
  if (pp >= 2 && comm.rank() < 2) {
    OwnedTensor t = tensor(3);
    DLTensor v = t.view();
    if (comm.rank() == 0) send_tensor(comm, v, 1, 9);
    else (void)recv_tensor(comm, 0, 9);
  }
  const size_t n = timeline::event_count();
  CHECK_MSG(n >= static_cast<size_t>(4 * pp + 2), std::to_string(n) + " events");
  timeline::write_timeline(ctx.group(smp::topo::Group::World));
  CHECK(timeline::event_count() == 0);
  smp_test::finish();
  return 0;
}
