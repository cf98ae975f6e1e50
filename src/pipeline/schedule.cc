#include "pipeline/schedule.h"

#include <algorithm>
#include <cstdint>

#include "common/error.h"

namespace smp::pipeline {

bool is_compute(OpKind k) { return k == OpKind::Forward || k == OpKind::Backward; }
bool is_send(OpKind k) { return k == OpKind::SendActivation || k == OpKind::SendGradient; }

const char *op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::Forward: return "forward";
    case OpKind::Backward: return "backward";
    case OpKind::SendActivation: return "send_activation";
    case OpKind::RecvActivation: return "recv_activation";
    case OpKind::SendGradient: return "send_gradient";
    case OpKind::RecvGradient: return "recv_gradient";
  }
  return "?";
}

const char *schedule_kind_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Simple: return "simple";
    case ScheduleKind::Interleaved: return "interleaved";
    case ScheduleKind::Virtual: return "virtual";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(const std::string &name) {
  if (name == "simple" || name == "gpipe") return ScheduleKind::Simple;
  if (name == "interleaved" || name == "1f1b") return ScheduleKind::Interleaved;
  if (name == "virtual") return ScheduleKind::Virtual;
  invalid("unknown schedule '" + name + "' (expected simple, interleaved or virtual)");
}

void validate(const ScheduleParams &p) {
  const int k = static_cast<int>(p.kind);
  if (k < 0 || k >= kNumScheduleKinds) invalid("schedule kind " + std::to_string(k) + " is not 0..2");
  if (p.pp < 1) invalid("pp must be >= 1, got " + std::to_string(p.pp));
  if (p.microbatches < 1) invalid("microbatches must be >= 1, got " + std::to_string(p.microbatches));
  if (p.chunks < 1) invalid("chunks must be >= 1, got " + std::to_string(p.chunks));
  if (p.active < 0) invalid("active_microbatches must be >= 0 (0 = default), got " + std::to_string(p.active));
  if (p.kind != ScheduleKind::Interleaved && p.active != 0)
    invalid(std::string("active_microbatches applies to the interleaved schedule only, not ") +
            schedule_kind_name(p.kind) + " (pass 0)");
  if (p.kind == ScheduleKind::Interleaved && p.chunks != 1)
    invalid("the interleaved (1F1B) schedule has one chunk per rank, got chunks=" +
            std::to_string(p.chunks) + "; use the virtual schedule for several");
  if (p.kind == ScheduleKind::Virtual && p.chunks > 1 && p.microbatches % p.pp != 0)
    invalid("the virtual schedule needs microbatches to be a multiple of pp (as Megatron-LM), got " +
            std::to_string(p.microbatches) + " microbatches for pp=" + std::to_string(p.pp));
  // The user's numbers meet in products (the op count, virtual stage
  // indices): checked in 64 bits, so none overflows int (which gave an
  // empty schedule reported as success) or asks for gigabytes of ops.
  const int64_t slots = int64_t{p.microbatches} * p.chunks, vstages = int64_t{p.pp} * p.chunks;
  if (slots > kMaxStageSlots)
    invalid("microbatches x chunks = " + std::to_string(p.microbatches) + " x " + std::to_string(p.chunks) + " = " +
            std::to_string(slots) + " is above the " + std::to_string(kMaxStageSlots) + " a stage's schedule may hold");
  if (vstages > kMaxVirtualStages)
    invalid("pp x chunks = " + std::to_string(p.pp) + " x " + std::to_string(p.chunks) + " = " +
            std::to_string(vstages) + " virtual stages is above the " + std::to_string(kMaxVirtualStages) +
            " supported");
}

int inflight_cap(const ScheduleParams &p, int stage) {
  const int active = p.active == 0 ? p.pp + 2 : p.active;
  return std::max(1, std::min({p.microbatches, active, p.pp - stage}));
}

namespace {

Op compute(OpKind k, int mb, int chunk) { return Op{k, mb, chunk, -1, -1}; }

// 1F1B with `warmup` forwards before the first backward.
std::vector<Op> one_f_one_b(int microbatches, int warmup) {
  std::vector<Op> out;
  for (int i = 0; i < warmup; ++i) out.push_back(compute(OpKind::Forward, i, 0));
  for (int i = 0; i + warmup < microbatches; ++i) {
    out.push_back(compute(OpKind::Forward, warmup + i, 0));
    out.push_back(compute(OpKind::Backward, i, 0));
  }
  for (int i = std::max(0, microbatches - warmup); i < microbatches; ++i)
    out.push_back(compute(OpKind::Backward, i, 0));
  return out;
}

// Megatron-LM's interleaved schedule (schedules.py,
// forward_backward_pipelining_with_interleaving): virtual microbatch k runs
// chunk (k mod pp*v) / pp (reversed for backward) of microbatch
// (k / (pp*v)) * pp + k mod pp.
std::vector<Op> megatron_interleaved(int pp, int stage, int m, int v) {
  const int total = m * v;
  int warmup = m == pp ? total : std::min(total, (pp - stage - 1) * 2 + (v - 1) * pp);
  auto mb_of = [&](int k) { return (k / (pp * v)) * pp + k % pp; };
  auto fchunk = [&](int k) { return (k % (pp * v)) / pp; };
  auto bchunk = [&](int k) { return v - 1 - fchunk(k); };
  std::vector<Op> out;
  for (int k = 0; k < warmup; ++k) out.push_back(compute(OpKind::Forward, mb_of(k), fchunk(k)));
  const int remaining = total - warmup;
  for (int i = 0; i < remaining; ++i) {
    const int k = warmup + i;
    out.push_back(compute(OpKind::Forward, mb_of(k), fchunk(k)));
    out.push_back(compute(OpKind::Backward, mb_of(i), bchunk(i)));
  }
  for (int i = remaining; i < total; ++i) out.push_back(compute(OpKind::Backward, mb_of(i), bchunk(i)));
  return out;
}

}  // namespace

std::vector<Op> compute_order(const ScheduleParams &p, int stage) {
  validate(p);
  if (stage < 0 || stage >= p.pp)
    invalid("stage " + std::to_string(stage) + " is not in 0.." + std::to_string(p.pp - 1));
  const int m = p.microbatches, v = p.chunks;
  switch (p.kind) {
    case ScheduleKind::Simple: {
      std::vector<Op> out;
      for (int c = 0; c < v; ++c)
        for (int i = 0; i < m; ++i) out.push_back(compute(OpKind::Forward, i, c));
      for (int c = v - 1; c >= 0; --c)
        for (int i = 0; i < m; ++i) out.push_back(compute(OpKind::Backward, i, c));
      return out;
    }
    case ScheduleKind::Interleaved:
      return one_f_one_b(m, inflight_cap(p, stage) - 1);
    case ScheduleKind::Virtual:
      if (v == 1) return one_f_one_b(m, std::min(m, p.pp - stage) - 1);
      return megatron_interleaved(p.pp, stage, m, v);
  }
  return {};
}

namespace {

// The neighbours of virtual stage (stage, chunk); -1 when there is none or
// when it lives on the same rank (pp == 1: the tensor stays local).
struct Neighbours {
  int prev = -1;
  int next = -1;
};

Neighbours neighbours(int pp, int chunks, int stage, int chunk) {
  const int vs = chunk * pp + stage, last = pp * chunks - 1;
  Neighbours n;
  if (vs > 0) n.prev = (vs - 1) % pp;
  if (vs < last) n.next = (vs + 1) % pp;
  if (n.prev == stage) n.prev = -1;
  if (n.next == stage) n.next = -1;
  return n;
}

}  // namespace

std::vector<Op> build_schedule(const ScheduleParams &p, int stage) {
  const std::vector<Op> order = compute_order(p, stage);
  std::vector<Op> out;
  int batch = 0;
  auto recv_for = [&](const Op &c, std::vector<Op> &group) {
    const Neighbours n = neighbours(p.pp, p.chunks, stage, c.chunk);
    if (c.kind == OpKind::Forward && n.prev >= 0)
      group.push_back(Op{OpKind::RecvActivation, c.microbatch, c.chunk, n.prev, 0});
    if (c.kind == OpKind::Backward && n.next >= 0)
      group.push_back(Op{OpKind::RecvGradient, c.microbatch, c.chunk, n.next, 0});
  };
  auto send_for = [&](const Op &c, std::vector<Op> &group) {
    const Neighbours n = neighbours(p.pp, p.chunks, stage, c.chunk);
    if (c.kind == OpKind::Forward && n.next >= 0)
      group.push_back(Op{OpKind::SendActivation, c.microbatch, c.chunk, n.next, 0});
    if (c.kind == OpKind::Backward && n.prev >= 0)
      group.push_back(Op{OpKind::SendGradient, c.microbatch, c.chunk, n.prev, 0});
  };
  auto flush = [&](std::vector<Op> &group) {
    if (group.empty()) return;
    for (Op &o : group) {
      o.batch = batch;
      out.push_back(o);
    }
    ++batch;
    group.clear();
  };
  std::vector<Op> group;
  for (size_t k = 0; k < order.size(); ++k) {
    if (k > 0) send_for(order[k - 1], group);
    recv_for(order[k], group);
    flush(group);
    out.push_back(order[k]);
  }
  if (!order.empty()) send_for(order.back(), group);
  flush(group);
  return out;
}

std::vector<std::vector<Op>> build_all(const ScheduleParams &p) {
  validate(p);
  const int64_t total = int64_t{p.pp} * p.microbatches * p.chunks;  // each factor <= 2^20 (validate)
  if (total > kMaxAllSlots)
    invalid("pp x microbatches x chunks = " + std::to_string(total) + " is above the " +
            std::to_string(kMaxAllSlots) + " that every stage's schedule together may hold");
  std::vector<std::vector<Op>> all;
  for (int s = 0; s < p.pp; ++s) all.push_back(build_schedule(p, s));
  return all;
}

}  // namespace smp::pipeline
