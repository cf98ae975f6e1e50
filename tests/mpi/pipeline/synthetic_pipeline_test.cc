// A synthetic pipeline run for real: every rank is one stage, runs its
// schedule through the executor (real tensors, varying shapes learned from
// the transport's headers), and every number it ends with (losses, input
// gradients, per-microbatch parameter gradients of each virtual stage) must
// equal, bit for bit, a one-process run of the same arithmetic in order.
// Every schedule kind, several microbatch counts, chunks and in-flight caps.
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mpi_check.h"
#include "pipeline/executor.h"
#include "synthetic_model.h"

using namespace smp::pipeline;

namespace {

smp::pipeline::OwnedTensor to_tensor(const std::vector<float> &v, int mb) {
  OwnedTensor t(DLDataType{kDLFloat, 32, 1}, {synthetic::rows(mb), synthetic::H});
  std::memcpy(t.data(), v.data(), v.size() * sizeof(float));
  return t;
}

std::vector<float> from_tensor(const DLTensor *t, int mb, const char *what) {
  CHECK_MSG(t != nullptr, what);
  CHECK_MSG(t->dtype.code == kDLFloat && t->dtype.bits == 32 && t->ndim == 2 &&
                t->shape[0] == synthetic::rows(mb) && t->shape[1] == synthetic::H,
            std::string(what) + ": got " + describe_tensor(t->dtype, t->shape, t->ndim));
  const float *p = static_cast<const float *>(t->data);
  return std::vector<float>(p, p + t->shape[0] * t->shape[1]);
}

bool same(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void run(smp::comm::Communicator &comm, ScheduleParams p) {
  const int pp = comm.size(), stage = comm.rank(), V = pp * p.chunks, m = p.microbatches;
  p.pp = pp;
  const std::string name = std::string(schedule_kind_name(p.kind)) + " pp=" + std::to_string(pp) +
                           " m=" + std::to_string(m) + " chunks=" + std::to_string(p.chunks) +
                           " active=" + std::to_string(p.active);
  using Key = std::pair<int, int>;  // (vs, mb)
  std::map<Key, std::vector<float>> xs, ys, ga, gb;
  std::map<int, float> losses;
  std::map<int, std::vector<float>> input_grads;
  int forwards = 0, backwards = 0;

  StageFns fns;
  fns.forward = [&](int mb, int chunk, ManagedTensor in) {
    const int vs = chunk * pp + stage;
    CHECK_MSG((in == nullptr) == (vs == 0), name);
    std::vector<float> x = vs == 0 ? synthetic::input(mb) : from_tensor(&in->dl_tensor, mb, "activation");
    std::vector<float> y = synthetic::forward(vs, x);
    if (vs == V - 1) losses[mb] = synthetic::loss(y);
    xs[{vs, mb}] = x;
    ys[{vs, mb}] = y;
    ++forwards;
    return to_managed(to_tensor(y, mb));
  };
  fns.backward = [&](int mb, int chunk, ManagedTensor gout) {
    const int vs = chunk * pp + stage;
    CHECK_MSG((gout == nullptr) == (vs == V - 1), name);
    CHECK_MSG(xs.count({vs, mb}) == 1, name + ": backward before forward");
    std::vector<float> gy = vs == V - 1 ? ys[{vs, mb}] : from_tensor(&gout->dl_tensor, mb, "gradient");
    synthetic::Grads g = synthetic::backward(vs, xs[{vs, mb}], ys[{vs, mb}], gy);
    ga[{vs, mb}] = g.a;
    gb[{vs, mb}] = g.b;
    xs.erase({vs, mb});
    ys.erase({vs, mb});
    ++backwards;
    if (vs == 0) {
      input_grads[mb] = g.input;
      return ManagedTensor();
    }
    return to_managed(to_tensor(g.input, mb));
  };
  run_step(comm, p, fns);

  const synthetic::Reference ref = synthetic::reference(V, m);
  CHECK_MSG(forwards == m * p.chunks && backwards == m * p.chunks, name);
  for (int c = 0; c < p.chunks; ++c) {
    const int vs = c * pp + stage;
    for (int mb = 0; mb < m; ++mb) {
      CHECK_MSG(same(ga[{vs, mb}], ref.ga[vs][mb]) && same(gb[{vs, mb}], ref.gb[vs][mb]),
                name + ": parameter gradients of virtual stage " + std::to_string(vs) +
                    " microbatch " + std::to_string(mb) + " differ from the one-process run");
      if (vs == V - 1)
        CHECK_MSG(std::memcmp(&losses[mb], &ref.losses[mb], sizeof(float)) == 0,
                  name + ": loss of microbatch " + std::to_string(mb));
      if (vs == 0) CHECK_MSG(same(input_grads[mb], ref.input_grads[mb]), name + ": input gradient");
    }
  }
}

}  // namespace

int main(int argc, char **argv) {
  smp::comm::Context &ctx = smp_test::init_pipeline_world(&argc, &argv);
  smp::comm::Communicator &comm = ctx.group(smp::topo::Group::PP);
  const int pp = comm.size();
  CHECK(pp == ctx.world_size());
  int runs = 0;
  auto go = [&](ScheduleKind k, int m, int chunks, int active) {
    ScheduleParams p;
    p.kind = k;
    p.microbatches = m;
    p.chunks = chunks;
    p.active = active;
    run(comm, p);
    ++runs;
  };
  for (int m : {1, pp, 2 * pp + 1}) go(ScheduleKind::Simple, m, 1, 0);
  go(ScheduleKind::Simple, pp + 1, 2, 0);
  for (int m : {1, pp - 1, 2 * pp + 1}) go(ScheduleKind::Interleaved, m, 1, 0);
  go(ScheduleKind::Interleaved, pp + 1, 1, 1);
  go(ScheduleKind::Interleaved, 2 * pp, 1, 2);
  go(ScheduleKind::Virtual, pp, 2, 0);
  go(ScheduleKind::Virtual, 2 * pp, 2, 0);
  go(ScheduleKind::Virtual, pp, 3, 0);
  go(ScheduleKind::Virtual, pp + 1, 1, 0);
  if (ctx.world_rank() == 0) std::printf("synthetic pipeline pp=%d: %d schedules match the one-process run\n", pp, runs);
  smp_test::finish();
  return 0;
}
