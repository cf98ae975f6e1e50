#include "pipeline/executor.h"

#include <deque>
#include <map>
#include <new>
#include <string>
#include <utility>

#include "common/error.h"
#include "trace/timeline.h"

namespace smp::pipeline {

namespace {

using Key = std::pair<int, int>;  // (microbatch, chunk)

// What a failed stage sends in place of a tensor: an empty tensor of a
// dtype no framework sends (run_step refuses it from callbacks).
constexpr DLDataType kMarker{kDLOpaqueHandle, 8, 1};
bool is_marker(const DLDataType &t) { return t.code == kMarker.code; }

bool same_spec(const OwnedTensor &t, const TensorSpec &s) {
  return t.dtype().code == s.dtype.code && t.dtype().bits == s.dtype.bits &&
         t.dtype().lanes == s.dtype.lanes && t.shape() == s.shape;
}

class Step {
 public:
  Step(comm::Communicator &comm, const ScheduleParams &params, const StageFns &fns,
       const TensorSpec *expect)
      : comm_(comm), fns_(fns), expect_(expect), params_(params), pp_(params.pp), stage_(comm.rank()),
        last_vs_(params.pp * params.chunks - 1) {}

  void run(const std::vector<Op> &ops);

 private:
  bool healthy() const { return !failed_ && !poisoned_; }
  std::string where(const char *what, Key k) const {
    return "pipeline stage " + std::to_string(stage_) + ": " + what + " of microbatch " +
           std::to_string(k.first) + ", chunk " + std::to_string(k.second);
  }
  // This stage failed (the first failure counts).
  void fail_here(Status s, const std::string &message) {
    if (failed_) return;
    failed_ = true;
    status_ = s;
    message_ = message;
  }
  template <class F>
  ManagedTensor call(const char *what, Key k, int to_vs, bool sent, F &&fn);
  void compute(const Op &op);
  size_t exchange_batch(const std::vector<Op> &ops, size_t i);
  void agree();

  comm::Communicator &comm_;
  const StageFns &fns_;
  const TensorSpec *expect_;
  const ScheduleParams params_;
  const int pp_, stage_, last_vs_;
  // Received (or, with pp == 1, handed on in memory) and due to be sent.
  std::map<Key, ManagedTensor> inputs_, grads_, out_act_, out_grad_;
  std::deque<ManagedTensor> in_flight_;  // sent, alive until their sends complete
  PendingSends pending_;
  bool failed_ = false;    // a callback (or what it returned) failed here
  bool poisoned_ = false;  // a neighbour sent a failure marker
  Status status_ = Status::Success;
  std::string message_;
};

ManagedTensor take(std::map<Key, ManagedTensor> &from, Key k, const char *what) {
  auto it = from.find(k);
  if (it == from.end())
    fail(Status::Internal, std::string("pipeline executor: no ") + what + " for microbatch " +
                               std::to_string(k.first) + " chunk " + std::to_string(k.second));
  ManagedTensor t = std::move(it->second);
  from.erase(it);
  return t;
}

ManagedTensor marker() { return to_managed(OwnedTensor(kMarker, {0})); }

// Runs one callback; a failure (or no result where virtual stage `to_vs`
// needs one, or one that cannot be `sent`) marks the stage failed and
// yields a marker instead. to_vs < 0: the result goes nowhere.
template <class F>
ManagedTensor Step::call(const char *what, Key k, int to_vs, bool sent, F &&fn) {
  try {
    trace::Scope scope(what, trace::Args{k.first, k.second, -1, -1, nullptr});
    ManagedTensor out = fn();
    if (to_vs >= 0 && !out)
      invalid("returned no tensor, but virtual stage " + std::to_string(to_vs) + " needs one");
    if (sent) {
      tensor_nbytes(out->dl_tensor);  // sendable: checked here, before any exchange
      if (is_marker(out->dl_tensor.dtype)) invalid("returned an opaque-handle tensor");
    }
    return out;
  } catch (const Error &e) {
    fail_here(e.status(), where(what, k) + ": " + e.what());
  } catch (const std::bad_alloc &) {
    fail_here(Status::Backend, where(what, k) + ": out of memory");
  } catch (const std::exception &e) {
    fail_here(Status::Internal, where(what, k) + ": internal error: " + e.what());
  } catch (...) {
    fail_here(Status::Internal, where(what, k) + ": internal error: unknown exception");
  }
  return marker();
}

void Step::compute(const Op &op) {
  const Key key{op.microbatch, op.chunk};
  const int vs = virtual_stage(params_, stage_, op.chunk);
  if (op.kind == OpKind::BackwardWeight) {
    if (healthy() && fns_.backward_weight)
      call("backward_weight", key, -1, false, [&] {
        fns_.backward_weight(op.microbatch, op.chunk);
        return ManagedTensor();
      });
    return;
  }
  if (op.kind == OpKind::Forward) {
    ManagedTensor in;
    if (vs > 0) in = take(inputs_, key, "input activation");
    const bool on = vs < last_vs_;  // the output goes on to virtual stage vs + 1
    const StageChunk to = on ? stage_chunk(params_, vs + 1) : StageChunk{-1, -1};
    const bool local = to.stage == stage_;  // it lives here too: handed over in memory
    ManagedTensor out = marker();
    if (healthy())
      out = call("forward", key, on ? vs + 1 : -1, on && !local,
                 [&] { return fns_.forward(op.microbatch, op.chunk, std::move(in)); });
    if (on) {
      if (local)
        inputs_[Key{op.microbatch, to.chunk}] = std::move(out);
      else
        out_act_[key] = std::move(out);
    }
    return;
  }
  ManagedTensor g;
  if (vs < last_vs_) g = take(grads_, key, "output gradient");
  const bool on = vs > 0;  // the input gradient goes back to virtual stage vs - 1
  const StageChunk to = on ? stage_chunk(params_, vs - 1) : StageChunk{-1, -1};
  const bool local = to.stage == stage_;
  const char *what = op.kind == OpKind::BackwardInput ? "backward_input" : "backward";
  ManagedTensor gin = marker();
  if (healthy())
    gin = call(what, key, on ? vs - 1 : -1, on && !local,
               [&] { return fns_.backward(op.microbatch, op.chunk, std::move(g)); });
  if (on) {
    if (local)
      grads_[Key{op.microbatch, to.chunk}] = std::move(gin);
    else
      out_grad_[key] = std::move(gin);
  }
}

// One exchange: every consecutive communication op with ops[i]'s batch.
// Returns the index after them.
size_t Step::exchange_batch(const std::vector<Op> &ops, size_t i) {
  std::vector<SendSpec> sends;
  std::vector<RecvSpec> recvs;
  std::vector<const Op *> recv_ops;
  size_t e = i;
  for (; e < ops.size() && !is_compute(ops[e].kind) && ops[e].batch == ops[i].batch; ++e) {
    const Op &c = ops[e];
    const Key k{c.microbatch, c.chunk};
    if (c.kind == OpKind::SendActivation || c.kind == OpKind::SendGradient) {
      const bool act = c.kind == OpKind::SendActivation;
      in_flight_.push_back(
          take(act ? out_act_ : out_grad_, k, act ? "activation to send" : "gradient to send"));
      sends.push_back(
          SendSpec{&in_flight_.back()->dl_tensor, c.peer, act ? kActivationTag : kGradientTag});
    } else {
      RecvSpec r;
      r.peer = c.peer;
      r.tag = c.kind == OpKind::RecvActivation ? kActivationTag : kGradientTag;
      recvs.push_back(std::move(r));
      recv_ops.push_back(&c);
    }
  }
  exchange(comm_, sends, recvs, &pending_);
  for (size_t r = 0; r < recvs.size(); ++r) {
    const Op &c = *recv_ops[r];
    const bool act = c.kind == OpKind::RecvActivation;
    OwnedTensor &got = recvs[r].result;
    if (is_marker(got.dtype())) {
      poisoned_ = true;
    } else if (expect_ != nullptr && healthy() && !same_spec(got, *expect_)) {
      const auto ndim = [](const std::vector<int64_t> &v) { return static_cast<int>(v.size()); };
      fail_here(Status::PeerFailed,
                where(act ? "the activation" : "the gradient", Key{c.microbatch, c.chunk}) +
                    " from stage " + std::to_string(c.peer) + " is " +
                    describe_tensor(got.dtype(), got.shape().data(), ndim(got.shape())) + ", but " +
                    describe_tensor(expect_->dtype, expect_->shape.data(), ndim(expect_->shape)) +
                    " was expected");
    }
    (act ? inputs_ : grads_)[Key{c.microbatch, c.chunk}] = to_managed(std::move(got));
  }
  if (pending_.test()) in_flight_.clear();
  return e;
}

// Every stage learns the first failed stage and its message (collective).
void Step::agree() {
  if (pp_ > 1) {
    const int mine = failed_ ? stage_ : pp_;
    int first = pp_;
    comm_.allreduce(&mine, &first, 1, DType::I32, comm::ReduceOp::Min);
    if (first == pp_) {
      if (poisoned_)
        fail(Status::Internal, "pipeline executor: a failure marker arrived, but no stage failed");
      return;
    }
    if (!failed_) {
      int64_t len = 0;
      comm_.broadcast(&len, 1, DType::I64, first);
      std::string message(static_cast<size_t>(len), '\0');
      if (len > 0) comm_.broadcast(message.data(), message.size(), DType::U8, first);
      fail(Status::PeerFailed, message);
    }
    int64_t len = static_cast<int64_t>(message_.size());
    comm_.broadcast(&len, 1, DType::I64, first);
    std::string message = stage_ == first ? message_ : std::string(static_cast<size_t>(len), '\0');
    if (len > 0) comm_.broadcast(message.data(), message.size(), DType::U8, first);
  }
  if (failed_) fail(status_, message_);
}

void Step::run(const std::vector<Op> &ops) {
  for (size_t i = 0; i < ops.size();) {
    if (is_compute(ops[i].kind)) {
      compute(ops[i]);
      ++i;
    } else {
      i = exchange_batch(ops, i);
    }
  }
  pending_.wait();
  in_flight_.clear();
  if (!inputs_.empty() || !grads_.empty() || !out_act_.empty() || !out_grad_.empty())
    fail_here(Status::Internal, "pipeline executor: tensors left over at the end of the step");
  agree();
}

}  // namespace

void run_step(comm::Communicator &comm, const ScheduleParams &params, const StageFns &fns,
              const TensorSpec *expect) {
  validate(params);
  if (params.pp != comm.size())
    invalid("run_step: pp=" + std::to_string(params.pp) + " but the " + comm.group_name() +
            " group has " + std::to_string(comm.size()) + " ranks");
  if (!fns.forward || !fns.backward) invalid("run_step: forward and backward must both be set");
  if (expect != nullptr) {
    if (expect->shape.size() > static_cast<size_t>(kMaxTensorDims))
      invalid("run_step: the expected shape has " + std::to_string(expect->shape.size()) +
              " dimensions; supported: 0.." + std::to_string(kMaxTensorDims));
    if (expect->dtype.bits == 0 || expect->dtype.bits % 8 != 0 || expect->dtype.lanes == 0 ||
        is_marker(expect->dtype))
      invalid("run_step: the expected dtype " + describe_tensor(expect->dtype, nullptr, 0) +
              " cannot be sent");
    for (int64_t d : expect->shape)
      if (d < 0) invalid("run_step: the expected shape has a negative dimension");
  }
  Step(comm, params, fns, expect).run(build_schedule(params, comm.rank()));
}

}  // namespace smp::pipeline
