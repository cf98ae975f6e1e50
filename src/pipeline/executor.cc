#include "pipeline/executor.h"

#include <deque>
#include <map>
#include <utility>

#include "common/error.h"
#include "pipeline/timeline.h"

namespace smp::pipeline {

namespace {
using Key = std::pair<int, int>;  // (microbatch, chunk)

OwnedTensor take(std::map<Key, OwnedTensor> &from, Key k, const char *what) {
  auto it = from.find(k);
  if (it == from.end())
    fail(Status::Internal, std::string("pipeline executor: no ") + what + " for microbatch " +
                               std::to_string(k.first) + " chunk " + std::to_string(k.second));
  OwnedTensor t = std::move(it->second);
  from.erase(it);
  return t;
}
}  // namespace

void run_step(comm::Communicator &comm, const ScheduleParams &params, const StageFns &fns) {
  validate(params);
  if (params.pp != comm.size())
    invalid("run_step: pp=" + std::to_string(params.pp) + " but the " + comm.group_name() +
            " group has " + std::to_string(comm.size()) + " ranks");
  if (!fns.forward || !fns.backward) invalid("run_step: forward and backward must both be set");
  const int pp = params.pp, stage = comm.rank(), last_vs = pp * params.chunks - 1;
  const std::vector<Op> ops = build_schedule(params, stage);

  std::map<Key, OwnedTensor> inputs, grads, out_act, out_grad;
  std::deque<OwnedTensor> in_flight;  // sent tensors, alive until their sends complete
  PendingSends pending;

  for (size_t i = 0; i < ops.size();) {
    const Op &op = ops[i];
    const Key key{op.microbatch, op.chunk};
    const int vs = op.chunk * pp + stage;
    if (op.kind == OpKind::Forward) {
      OwnedTensor in;
      DLTensor view{};
      if (vs > 0) {
        in = take(inputs, key, "input activation");
        view = in.view();
      }
      OwnedTensor out;
      {
        timeline::Scope scope("forward", timeline::Args{op.microbatch, op.chunk, -1, -1, nullptr});
        out = fns.forward(op.microbatch, op.chunk, vs > 0 ? &view : nullptr);
      }
      if (vs < last_vs) {
        if (pp == 1)  // the next chunk lives here too
          inputs[Key{op.microbatch, op.chunk + 1}] = std::move(out);
        else
          out_act[key] = std::move(out);
      }
      ++i;
      continue;
    }
    if (op.kind == OpKind::Backward) {
      OwnedTensor g;
      DLTensor view{};
      if (vs < last_vs) {
        g = take(grads, key, "output gradient");
        view = g.view();
      }
      OwnedTensor gin;
      {
        timeline::Scope scope("backward", timeline::Args{op.microbatch, op.chunk, -1, -1, nullptr});
        gin = fns.backward(op.microbatch, op.chunk, vs < last_vs ? &view : nullptr);
      }
      if (vs > 0) {
        if (pp == 1)
          grads[Key{op.microbatch, op.chunk - 1}] = std::move(gin);
        else
          out_grad[key] = std::move(gin);
      }
      ++i;
      continue;
    }
    // One exchange: every consecutive communication op with this batch.
    std::vector<SendSpec> sends;
    std::vector<DLTensor> views;
    std::vector<RecvSpec> recvs;
    std::vector<Op> recv_ops;
    size_t e = i;
    for (; e < ops.size() && !is_compute(ops[e].kind) && ops[e].batch == op.batch; ++e) {
      const Op &c = ops[e];
      const Key k{c.microbatch, c.chunk};
      if (c.kind == OpKind::SendActivation || c.kind == OpKind::SendGradient) {
        const bool act = c.kind == OpKind::SendActivation;
        in_flight.push_back(take(act ? out_act : out_grad, k, act ? "activation to send" : "gradient to send"));
        sends.push_back(SendSpec{nullptr, c.peer, act ? kActivationTag : kGradientTag});
      } else {
        RecvSpec r;
        r.peer = c.peer;
        r.tag = c.kind == OpKind::RecvActivation ? kActivationTag : kGradientTag;
        recvs.push_back(std::move(r));
        recv_ops.push_back(c);
      }
    }
    // Views after every push_back, so the vector does not move under them.
    views.reserve(sends.size());
    for (size_t s = 0; s < sends.size(); ++s) {
      views.push_back(in_flight[in_flight.size() - sends.size() + s].view());
      sends[s].tensor = &views.back();
    }
    exchange(comm, sends, recvs, &pending);
    for (size_t r = 0; r < recvs.size(); ++r) {
      const Key k{recv_ops[r].microbatch, recv_ops[r].chunk};
      (recv_ops[r].kind == OpKind::RecvActivation ? inputs : grads)[k] = std::move(recvs[r].result);
    }
    if (pending.test()) in_flight.clear();
    i = e;
  }
  pending.wait();
  if (!inputs.empty() || !grads.empty() || !out_act.empty() || !out_grad.empty())
    fail(Status::Internal, "pipeline executor: tensors left over at the end of the step");
}

}  // namespace smp::pipeline
