// Records a timeline (run with SMP_TIMELINE set; check_timeline.py checks
// the file): one 1F1B step of the synthetic pipeline through the executor,
// a framework mark around a fake optimizer step, a mark with a name JSON
// must escape, and a send_tensor / recv_tensor pair, then write_timeline()
// over WORLD.
#include <cstring>
#include <string>

#include "mpi_check.h"
#include "pipeline/executor.h"
#include "pipeline/timeline_file.h"

using namespace smp::pipeline;

int main(int argc, char **argv) {
  smp::comm::Context &ctx = smp_test::init_pipeline_world(&argc, &argv);
  smp::comm::Communicator &comm = ctx.group(smp::topo::Group::PP);
  CHECK_MSG(smp::trace::enabled(), "run with SMP_TIMELINE set");
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

  smp::trace::Args a;
  a.microbatch = -1;
  smp::trace::begin("optimizer_step", a);
  smp::trace::begin("allreduce_grads", a);  // nested
  smp::trace::end();
  smp::trace::end();
  // A framework's name is any bytes: quotes, a control character and a
  // byte that is not UTF-8 reach the file as JSON strings (the last as U+FFFD).
  smp::trace::begin("say \"hi\"\n\xff", a);
  smp::trace::end();
  if (pp >= 2 && comm.rank() < 2) {
    OwnedTensor t = tensor(3);
    DLTensor v = t.view();
    if (comm.rank() == 0) send_tensor(comm, v, 1, 9);
    else (void)recv_tensor(comm, 0, 9);
  }
  const size_t n = smp::trace::event_count();
  CHECK_MSG(n >= static_cast<size_t>(4 * pp + 2), std::to_string(n) + " events");
  timeline::write_timeline(ctx.group(smp::topo::Group::World));
  CHECK(smp::trace::event_count() == 0);
  smp_test::finish();
  return 0;
}
