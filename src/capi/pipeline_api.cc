// The C API's pipeline section: tensor transport over a group, the
// executor (smp_pipeline_run_step: pipeline::run_step with C callbacks),
// and the pure schedule / simulator / partitioner queries (valid before
// smp_init).
#include <dlpack/dlpack.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "capi/guard.h"
#include "capi/request.h"
#include "pipeline/executor.h"
#include "pipeline/partition.h"
#include "pipeline/schedule.h"
#include "pipeline/simulate.h"
#include "pipeline/timeline_file.h"
#include "pipeline/transport.h"

namespace pl = smp::pipeline;
using smp::capi::group_word;
using smp::capi::guarded;
using smp::capi::guarded_any;
using smp::capi::require;
using smp::capi::to_group;

// smp.h's op kinds are the C++ ones, value for value.
static_assert(static_cast<int>(SMP_PIPE_RECV_GRADIENT) == static_cast<int>(pl::OpKind::RecvGradient),
              "smp_pipe_op_kind_t and pipeline::OpKind must agree");
static_assert(static_cast<int>(SMP_PIPE_BACKWARD_WEIGHT) == static_cast<int>(pl::OpKind::BackwardWeight),
              "smp_pipe_op_kind_t and pipeline::OpKind must agree");
static_assert(static_cast<int>(SMP_SCHEDULE_VIRTUAL) == static_cast<int>(pl::ScheduleKind::Virtual) &&
                  static_cast<int>(SMP_SCHEDULE_ZB_V) == static_cast<int>(pl::ScheduleKind::ZbV) &&
                  static_cast<int>(SMP_SCHEDULE_ZB_V) + 1 == pl::kNumScheduleKinds,
              "smp_schedule_t and pipeline::ScheduleKind must agree");

namespace {

// kind by reference: a C caller may pass any int, and loading an enum
// outside its range is undefined behaviour in C++ (raw_enum reads bytes).
pl::ScheduleParams schedule_params(const char *fn, const smp_schedule_t &kind, int pp,
                                   int microbatches, int chunks, int active) {
  const int k = smp::capi::raw_enum(kind);
  require(k >= 0 && k < pl::kNumScheduleKinds,
          std::string(fn) + ": kind " + std::to_string(k) +
              " is not an smp_schedule_t (SMP_SCHEDULE_SIMPLE..SMP_SCHEDULE_ZB_V)");
  pl::ScheduleParams p;
  p.kind = static_cast<pl::ScheduleKind>(k);
  p.pp = pp;
  p.microbatches = microbatches;
  p.chunks = chunks;
  p.active = active;
  try {
    pl::validate(p);
  } catch (const smp::Error &e) {
    smp::invalid(std::string(fn) + ": " + e.what());
  }
  return p;
}

const DLTensor &tensor_of(const struct DLManagedTensor *t, const char *fn, const char *name) {
  require(t != nullptr, std::string(fn) + ": " + name + " is NULL");
  return t->dl_tensor;
}

// "float32[4, 8], " for a send's label; "" for a tensor the call rejects.
std::string tensor_word(const struct DLManagedTensor *t) {
  if (t == nullptr || t->dl_tensor.ndim < 0 || t->dl_tensor.ndim > pl::kMaxTensorDims ||
      (t->dl_tensor.ndim > 0 && t->dl_tensor.shape == nullptr))
    return "";
  return pl::describe_tensor(t->dl_tensor.dtype, t->dl_tensor.shape, t->dl_tensor.ndim) + ", ";
}

// An exchange's label: "smp_exchange_tensors(2 sends (peers 1, 2); 1
// receive (peer 0); PP_GROUP)", at most 8 peers listed each way.
std::string exchange_word(const char *fn, const smp_tensor_transfer_t *sends, size_t nsends,
                          const smp_tensor_transfer_t *recvs, size_t nrecvs, const smp_group_t &group) {
  auto peers = [](const smp_tensor_transfer_t *list, size_t n, const char *what) {
    if (n == 0 || list == nullptr) return std::string("no ") + what + "s";
    std::string out = std::to_string(n) + " " + what + (n == 1 ? "" : "s") + " (peer" + (n == 1 ? " " : "s ");
    for (size_t i = 0; i < n && i < 8; ++i) out += (i ? ", " : "") + std::to_string(list[i].peer);
    return out + (n > 8 ? ", ...)" : ")");
  };
  return std::string(fn) + "(" + peers(sends, nsends, "send") + "; " + peers(recvs, nrecvs, "receive") + "; " +
         group_word(group) + ")";
}

// Both exchange calls; sends are left in `pending` when given. Returns the
// bytes sent (for the deferred sends' wait event).
long long exchange_tensors(const char *fn, smp::comm::Context &ctx,
                           const smp_tensor_transfer_t *sends, size_t nsends,
                           smp_tensor_transfer_t *recvs, size_t nrecvs, smp_group_t group,
                           pl::PendingSends *pending) {
  smp::capi::require_ptr(sends, nsends, (std::string(fn) + ": sends").c_str());
  smp::capi::require_ptr(recvs, nrecvs, (std::string(fn) + ": recvs").c_str());
  std::vector<pl::SendSpec> s(nsends);
  long long bytes = 0;
  for (size_t i = 0; i < nsends; ++i) {
    const std::string name = "sends[" + std::to_string(i) + "].tensor";
    s[i] = pl::SendSpec{&tensor_of(sends[i].tensor, fn, name.c_str()), sends[i].peer, sends[i].tag};
  }
  std::vector<pl::RecvSpec> r(nrecvs);
  for (size_t i = 0; i < nrecvs; ++i) {
    r[i].peer = recvs[i].peer;
    r[i].tag = recvs[i].tag;
    r[i].into = recvs[i].tensor ? &recvs[i].tensor->dl_tensor : nullptr;
  }
  pl::exchange(ctx.group(to_group(group)), s, r, pending);
  for (const pl::SendSpec &spec : s) bytes += static_cast<long long>(pl::tensor_nbytes(*spec.tensor));
  for (size_t i = 0; i < nrecvs; ++i)
    if (recvs[i].tensor == nullptr) recvs[i].tensor = r[i].result.release_to_dlpack();
  return bytes;
}

DLDataType dl_dtype(smp::DType d) {
  switch (d) {
    case smp::DType::F32: return DLDataType{kDLFloat, 32, 1};
    case smp::DType::F64: return DLDataType{kDLFloat, 64, 1};
    case smp::DType::F16: return DLDataType{kDLFloat, 16, 1};
    case smp::DType::BF16: return DLDataType{kDLBfloat, 16, 1};
    case smp::DType::I8: return DLDataType{kDLInt, 8, 1};
    case smp::DType::U8: return DLDataType{kDLUInt, 8, 1};
    case smp::DType::I32: return DLDataType{kDLInt, 32, 1};
    case smp::DType::I64: return DLDataType{kDLInt, 64, 1};
  }
  smp::fail(smp::Status::Internal, "dl_dtype: unknown dtype");
}

using StageCallback = smp_status_t (*)(void *, int, int, struct DLManagedTensor *,
                                       struct DLManagedTensor **);

// One C callback as the executor calls it: ownership of `in` goes to the
// callee, of its result to the executor; a status other than SMP_SUCCESS
// becomes an smp::Error with the message the callback left in
// smp_last_error() (this thread's, cleared before the call), or the
// status's name.
pl::ManagedTensor call_stage(StageCallback fn, void *user, int microbatch, int chunk,
                             pl::ManagedTensor in) {
  DLManagedTensor *out = nullptr;
  smp::capi::set_last_error("");
  const smp_status_t st = fn(user, microbatch, chunk, in.release(), &out);
  pl::ManagedTensor result(out);
  const int code = smp::capi::raw_enum(st);
  if (code == SMP_SUCCESS) return result;
  std::string message = smp::capi::last_error();
  if (code > 0 || code < SMP_ERR_INTERNAL)
    smp::fail(smp::Status::Internal, "the callback returned " + std::to_string(code) +
                                         ", which is not an smp_status_t" +
                                         (message.empty() ? "" : " (" + message + ")"));
  if (message.empty()) message = std::string("the callback returned ") + smp_status_string(st);
  smp::fail(static_cast<smp::Status>(code), message);
}

// The W callback, as call_stage: a status other than SMP_SUCCESS becomes
// an smp::Error with the callback's message.
void call_weight(smp_status_t (*fn)(void *, int, int), void *user, int microbatch, int chunk) {
  smp::capi::set_last_error("");
  const smp_status_t st = fn(user, microbatch, chunk);
  const int code = smp::capi::raw_enum(st);
  if (code == SMP_SUCCESS) return;
  std::string message = smp::capi::last_error();
  if (code > 0 || code < SMP_ERR_INTERNAL)
    smp::fail(smp::Status::Internal, "the callback returned " + std::to_string(code) +
                                         ", which is not an smp_status_t" +
                                         (message.empty() ? "" : " (" + message + ")"));
  if (message.empty()) message = std::string("the callback returned ") + smp_status_string(st);
  smp::fail(static_cast<smp::Status>(code), message);
}

// Both simulate calls: backward = B + W for the unsplit schedules.
void simulate_into(const char *fn, const pl::ScheduleParams &p, pl::Costs c, double *step_time,
                   double *bubble_fraction, int *peak_activations) {
  require(step_time != nullptr && bubble_fraction != nullptr,
          std::string(fn) + ": step_time and bubble_fraction must not be NULL");
  pl::Simulation sim;
  try {
    sim = pl::simulate(pl::build_all(p), c, &p);
  } catch (const smp::Error &e) {
    if (e.status() == smp::Status::InvalidArgument) smp::invalid(std::string(fn) + ": " + e.what());
    throw;
  }
  *step_time = sim.step_time;
  *bubble_fraction = sim.bubble_fraction;
  if (peak_activations != nullptr)
    for (int s = 0; s < p.pp; ++s) peak_activations[s] = sim.peak_activations[static_cast<size_t>(s)];
}

}  // namespace

extern "C" {

smp_status_t smp_send_tensor(const struct DLManagedTensor *tensor, int peer, smp_group_t group,
                             int tag) {
  return guarded([&](smp::comm::Context &ctx) {
    const DLTensor &t = tensor_of(tensor, "smp_send_tensor", "tensor");
    smp::comm::CallScope call([&] {
      return "smp_send_tensor(" + tensor_word(tensor) + "peer " + std::to_string(peer) + ", " + group_word(group) +
             ", tag " + std::to_string(tag) + ")";
    });
    pl::send_tensor(ctx.group(to_group(group)), t, peer, tag);
  });
}

smp_status_t smp_recv_tensor(struct DLManagedTensor **tensor, int peer, smp_group_t group, int tag) {
  return guarded([&](smp::comm::Context &ctx) {
    require(tensor != nullptr, "smp_recv_tensor: tensor is NULL");
    *tensor = nullptr;
    smp::comm::CallScope call([&] {
      return "smp_recv_tensor(peer " + std::to_string(peer) + ", " + group_word(group) + ", tag " +
             std::to_string(tag) + ")";
    });
    pl::OwnedTensor got = pl::recv_tensor(ctx.group(to_group(group)), peer, tag);
    *tensor = got.release_to_dlpack();
  });
}

smp_status_t smp_recv_tensor_into(struct DLManagedTensor *tensor, int peer, smp_group_t group,
                                  int tag) {
  return guarded([&](smp::comm::Context &ctx) {
    require(tensor != nullptr, "smp_recv_tensor_into: tensor is NULL");
    smp::comm::CallScope call([&] {
      return "smp_recv_tensor_into(" + tensor_word(tensor) + "peer " + std::to_string(peer) + ", " +
             group_word(group) + ", tag " + std::to_string(tag) + ")";
    });
    pl::recv_tensor_into(ctx.group(to_group(group)), tensor->dl_tensor, peer, tag);
  });
}

smp_status_t smp_exchange_tensors(const smp_tensor_transfer_t *sends, size_t nsends,
                                  smp_tensor_transfer_t *recvs, size_t nrecvs, smp_group_t group) {
  return guarded([&](smp::comm::Context &ctx) {
    smp::comm::CallScope call(
        [&] { return exchange_word("smp_exchange_tensors", sends, nsends, recvs, nrecvs, group); });
    exchange_tensors("smp_exchange_tensors", ctx, sends, nsends, recvs, nrecvs, group, nullptr);
  });
}

smp_status_t smp_exchange_tensors_deferred(const smp_tensor_transfer_t *sends, size_t nsends,
                                           smp_tensor_transfer_t *recvs, size_t nrecvs,
                                           smp_group_t group, smp_request_t *sends_done) {
  return guarded([&](smp::comm::Context &ctx) {
    const char *fn = "smp_exchange_tensors_deferred";
    require(sends_done != nullptr, std::string(fn) + ": sends_done is NULL");
    *sends_done = nullptr;
    smp::comm::CallScope call([&] { return exchange_word(fn, sends, nsends, recvs, nrecvs, group); });
    auto pending = std::make_unique<pl::PendingSends>();
    const long long bytes =
        exchange_tensors(fn, ctx, sends, nsends, recvs, nrecvs, group, pending.get());
    smp::trace::Args event;  // the smp_wait event's
    if (smp::trace::enabled()) {
      event.bytes = bytes;
      event.group = ctx.group(to_group(group)).group_name();
    }
    *sends_done = new smp_request{std::move(pending), event, smp::comm::CallScope::current()};
  });
}

smp_status_t smp_pipeline_schedule(smp_schedule_t kind, int pp, int stage, int microbatches,
                                   int chunks, int active_microbatches, smp_pipe_op_t *ops,
                                   size_t capacity, size_t *n) {
  return guarded_any([&] {
    const char *fn = "smp_pipeline_schedule";
    require(n != nullptr, std::string(fn) + ": n is NULL");
    *n = 0;
    const pl::ScheduleParams p = schedule_params(fn, kind, pp, microbatches, chunks, active_microbatches);
    require(stage >= 0 && stage < pp, std::string(fn) + ": stage " + std::to_string(stage) +
                                          " is not in 0.." + std::to_string(pp - 1));
    const std::vector<pl::Op> list = pl::build_schedule(p, stage);
    *n = list.size();
    if (ops == nullptr) return;
    require(capacity >= list.size(), std::string(fn) + ": capacity " + std::to_string(capacity) +
                                         " is less than the " + std::to_string(list.size()) +
                                         " operations of the schedule");
    for (size_t i = 0; i < list.size(); ++i)
      ops[i] = smp_pipe_op_t{static_cast<smp_pipe_op_kind_t>(list[i].kind), list[i].microbatch,
                             list[i].chunk, list[i].peer, list[i].batch};
  });
}

smp_status_t smp_pipeline_run_step(smp_schedule_t kind, int microbatches, int chunks,
                                   int active_microbatches, smp_group_t group,
                                   const smp_stage_fns_t *fns) {
  return guarded([&](smp::comm::Context &ctx) {
    const std::string fn = "smp_pipeline_run_step";
    require(fns != nullptr, fn + ": fns is NULL");
    require(fns->forward != nullptr && fns->backward != nullptr,
            fn + ": fns->forward and fns->backward must both be set");
    smp::comm::Communicator &comm = ctx.group(to_group(group));
    const pl::ScheduleParams p =
        schedule_params(fn.c_str(), kind, comm.size(), microbatches, chunks, active_microbatches);
    std::optional<pl::TensorSpec> expect;
    if (fns->recv_shape != nullptr) {
      require(fns->recv_ndim >= 0 && fns->recv_ndim <= pl::kMaxTensorDims,
              fn + ": fns->recv_ndim " + std::to_string(fns->recv_ndim) + " is not in 0.." +
                  std::to_string(pl::kMaxTensorDims));
      expect.emplace();
      expect->dtype = dl_dtype(smp::capi::to_dtype(fns->recv_dtype, "fns->recv_dtype"));
      for (int d = 0; d < fns->recv_ndim; ++d) {
        require(fns->recv_shape[d] <= static_cast<size_t>(INT64_MAX),
                fn + ": fns->recv_shape[" + std::to_string(d) + "] is too large");
        expect->shape.push_back(static_cast<int64_t>(fns->recv_shape[d]));
      }
    } else {
      require(fns->recv_ndim == 0, fn + ": fns->recv_ndim is " + std::to_string(fns->recv_ndim) +
                                       " but fns->recv_shape is NULL");
    }
    smp::comm::CallScope call([&] {
      return fn + "(" + pl::schedule_kind_name(p.kind) + ", " + std::to_string(microbatches) + " microbatches, " +
             std::to_string(chunks) + " chunks, " + group_word(group) + ")";
    });
    const smp_stage_fns_t c = *fns;
    // call_stage clears smp_last_error() before each callback; a step that
    // succeeds leaves the thread's last failure as it found it.
    const std::string last_failure = smp::capi::last_error();
    pl::StageFns sf;
    sf.forward = [&c](int m, int chunk, pl::ManagedTensor in) {
      return call_stage(c.forward, c.user, m, chunk, std::move(in));
    };
    sf.backward = [&c](int m, int chunk, pl::ManagedTensor g) {
      return call_stage(c.backward, c.user, m, chunk, std::move(g));
    };
    if (c.backward_weight != nullptr)
      sf.backward_weight = [&c](int m, int chunk) { call_weight(c.backward_weight, c.user, m, chunk); };
    pl::run_step(comm, p, sf, expect ? &*expect : nullptr);
    smp::capi::set_last_error(last_failure);
  });
}

smp_status_t smp_stage_error(smp_status_t status, const char *message) {
  smp::capi::set_last_error(message != nullptr ? message : "");
  return status;
}

smp_status_t smp_pipeline_simulate(smp_schedule_t kind, int pp, int microbatches, int chunks,
                                   int active_microbatches, const double *forward_time,
                                   const double *backward_time, double activation_transfer,
                                   double gradient_transfer, double *step_time,
                                   double *bubble_fraction, int *peak_activations) {
  return guarded_any([&] {
    const char *fn = "smp_pipeline_simulate";
    const pl::ScheduleParams p = schedule_params(fn, kind, pp, microbatches, chunks, active_microbatches);
    require(forward_time != nullptr && backward_time != nullptr,
            std::string(fn) + ": forward_time and backward_time must point to pp values");
    pl::Costs c;
    c.forward.assign(forward_time, forward_time + pp);
    c.backward.assign(backward_time, backward_time + pp);
    c.activation_transfer = activation_transfer;
    c.gradient_transfer = gradient_transfer;
    simulate_into(fn, p, std::move(c), step_time, bubble_fraction, peak_activations);
  });
}

smp_status_t smp_pipeline_simulate_split(smp_schedule_t kind, int pp, int microbatches, int chunks,
                                         int active_microbatches, const double *forward_time,
                                         const double *backward_input_time,
                                         const double *backward_weight_time, double activation_transfer,
                                         double gradient_transfer, double *step_time,
                                         double *bubble_fraction, int *peak_activations) {
  return guarded_any([&] {
    const char *fn = "smp_pipeline_simulate_split";
    const pl::ScheduleParams p = schedule_params(fn, kind, pp, microbatches, chunks, active_microbatches);
    require(forward_time != nullptr && backward_input_time != nullptr && backward_weight_time != nullptr,
            std::string(fn) + ": forward_time, backward_input_time and backward_weight_time must point "
                              "to pp values");
    pl::Costs c;
    c.forward.assign(forward_time, forward_time + pp);
    c.backward_input.assign(backward_input_time, backward_input_time + pp);
    c.backward_weight.assign(backward_weight_time, backward_weight_time + pp);
    for (int s = 0; s < pp; ++s) c.backward.push_back(backward_input_time[s] + backward_weight_time[s]);
    c.activation_transfer = activation_transfer;
    c.gradient_transfer = gradient_transfer;
    simulate_into(fn, p, std::move(c), step_time, bubble_fraction, peak_activations);
  });
}

smp_status_t smp_pipeline_virtual_stage(smp_schedule_t kind, int pp, int stage, int chunk, int *vstage) {
  return guarded_any([&] {
    const char *fn = "smp_pipeline_virtual_stage";
    require(vstage != nullptr, std::string(fn) + ": vstage is NULL");
    const int k = smp::capi::raw_enum(kind);
    require(k >= 0 && k < pl::kNumScheduleKinds,
            std::string(fn) + ": kind " + std::to_string(k) + " is not an smp_schedule_t");
    pl::ScheduleParams p;
    p.kind = static_cast<pl::ScheduleKind>(k);
    p.pp = pp;
    const int chunks = p.kind == pl::ScheduleKind::ZbV ? 2 : INT32_MAX / (pp > 0 ? pp : 1);
    require(pp >= 1 && stage >= 0 && stage < pp && chunk >= 0 && chunk < chunks,
            std::string(fn) + ": stage " + std::to_string(stage) + ", chunk " + std::to_string(chunk) +
                " is not a chunk of a " + std::to_string(pp) + "-stage " + pl::schedule_kind_name(p.kind) +
                " pipeline");
    *vstage = pl::virtual_stage(p, stage, chunk);
  });
}

smp_status_t smp_pipeline_partition(const smp_layer_cost_t *layers, size_t nlayers, int pp,
                                    double memory_weight, double memory_limit,
                                    smp_stage_info_t *stages, double *max_cost) {
  return guarded_any([&] {
    const char *fn = "smp_pipeline_partition";
    require(layers != nullptr || nlayers == 0, std::string(fn) + ": layers is NULL");
    require(stages != nullptr, std::string(fn) + ": stages is NULL (it needs pp entries)");
    std::vector<pl::Layer> l(nlayers);
    for (size_t i = 0; i < nlayers; ++i) l[i] = pl::Layer{layers[i].compute, layers[i].memory};
    const pl::Partition part = pl::partition(l, pp, memory_weight, memory_limit);
    for (int s = 0; s < pp; ++s) {
      const pl::StageInfo &st = part.stages[static_cast<size_t>(s)];
      stages[s] = smp_stage_info_t{st.first, st.count, st.compute, st.memory, st.cost};
    }
    if (max_cost != nullptr) *max_cost = part.max_cost;
  });
}

smp_status_t smp_timeline_begin(const char *name, int microbatch, int chunk) {
  return guarded_any([&] {
    require(name != nullptr, "smp_timeline_begin: name is NULL");
    smp::trace::Args a;
    a.microbatch = microbatch;
    a.chunk = chunk;
    smp::trace::begin(name, a);
  });
}

smp_status_t smp_timeline_end(void) {
  return guarded_any([&] { smp::trace::end(); });
}

smp_status_t smp_timeline_write(void) {
  return guarded([&](smp::comm::Context &ctx) {
    pl::timeline::write_timeline(ctx.group(smp::topo::Group::World));
  });
}

}  // extern "C"
