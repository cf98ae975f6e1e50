#include "pipeline/schedule.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <deque>

#include "common/error.h"

namespace smp::pipeline {

bool is_compute(OpKind k) {
  return k == OpKind::Forward || k == OpKind::Backward || k == OpKind::BackwardInput ||
         k == OpKind::BackwardWeight;
}
bool is_send(OpKind k) { return k == OpKind::SendActivation || k == OpKind::SendGradient; }
bool is_backward(OpKind k) { return k == OpKind::Backward || k == OpKind::BackwardInput; }
bool splits_backward(ScheduleKind k) { return k == ScheduleKind::ZbH1 || k == ScheduleKind::ZbV; }

const char *op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::Forward: return "forward";
    case OpKind::Backward: return "backward";
    case OpKind::SendActivation: return "send_activation";
    case OpKind::RecvActivation: return "recv_activation";
    case OpKind::SendGradient: return "send_gradient";
    case OpKind::RecvGradient: return "recv_gradient";
    case OpKind::BackwardInput: return "backward_input";
    case OpKind::BackwardWeight: return "backward_weight";
  }
  return "?";
}

const char *schedule_kind_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Simple: return "simple";
    case ScheduleKind::Interleaved: return "interleaved";
    case ScheduleKind::Virtual: return "virtual";
    case ScheduleKind::ZbH1: return "zb-h1";
    case ScheduleKind::ZbV: return "zb-v";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(const std::string &name) {
  if (name == "simple" || name == "gpipe") return ScheduleKind::Simple;
  if (name == "interleaved" || name == "1f1b") return ScheduleKind::Interleaved;
  if (name == "virtual") return ScheduleKind::Virtual;
  if (name == "zb-h1") return ScheduleKind::ZbH1;
  if (name == "zb-v") return ScheduleKind::ZbV;
  invalid("unknown schedule '" + name + "' (expected simple, interleaved, virtual, zb-h1 or zb-v)");
}

void validate(const ScheduleParams &p) {
  const int k = static_cast<int>(p.kind);
  if (k < 0 || k >= kNumScheduleKinds)
    invalid("schedule kind " + std::to_string(k) + " is not 0.." + std::to_string(kNumScheduleKinds - 1));
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
  if (splits_backward(p.kind)) {
    const std::string name = schedule_kind_name(p.kind);
    const int want = p.kind == ScheduleKind::ZbV ? 2 : 1;
    if (p.chunks != want)
      invalid("the " + name + " schedule has " + std::to_string(want) + " chunk" + (want > 1 ? "s" : "") +
              " per rank, got chunks=" + std::to_string(p.chunks));
    if (p.pp < 2) invalid("the " + name + " schedule needs pp >= 2, got pp=" + std::to_string(p.pp));
    if (p.microbatches < p.pp)
      invalid("the " + name + " schedule needs microbatches >= pp, got " + std::to_string(p.microbatches) +
              " microbatches for pp=" + std::to_string(p.pp));
  }
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

int activation_bound(const ScheduleParams &p, int stage) {
  switch (p.kind) {
    case ScheduleKind::Interleaved: return inflight_cap(p, stage);
    case ScheduleKind::ZbH1: return p.pp - stage;
    case ScheduleKind::ZbV: return 2 * p.pp;
    default: return -1;
  }
}

int virtual_stage(const ScheduleParams &p, int stage, int chunk) {
  if (p.kind == ScheduleKind::ZbV && chunk == 1) return 2 * p.pp - 1 - stage;
  return chunk * p.pp + stage;
}

StageChunk stage_chunk(const ScheduleParams &p, int vstage) {
  if (p.kind == ScheduleKind::ZbV && vstage >= p.pp) return {2 * p.pp - 1 - vstage, 1};
  return {vstage % p.pp, vstage / p.pp};
}

namespace {

Op compute(OpKind k, int mb, int chunk) { return Op{k, mb, chunk, -1, -1}; }

// The zero-bubble orders of every stage (schedule.h, compute_order): a
// list scheduler on a unit clock. Each time step, every free stage picks
// one op whose inputs were complete at the step's start, so the choice
// does not depend on the order stages are visited in. Per (stage, chunk)
// forwards and B's go in microbatch order, so each channel carries its
// messages in the order both ends list them.
std::vector<std::vector<Op>> zero_bubble_orders(const ScheduleParams &p) {
  const int pp = p.pp, m = p.microbatches, v = p.chunks, nvs = pp * v;
  constexpr int kNever = INT32_MAX;
  // End times of each (virtual stage, microbatch)'s forward and B.
  std::vector<int> fend(static_cast<size_t>(nvs) * m, kNever), bend = fend;
  auto at = [m](int vs, int mb) { return static_cast<size_t>(vs) * m + mb; };
  std::vector<std::vector<Op>> out(pp);
  std::vector<int> held(pp, 0), left(pp, 3 * m * v), cap(pp);
  std::vector<std::vector<int>> nextf(pp, std::vector<int>(v, 0)), nextb = nextf;
  std::vector<std::deque<Op>> pending_w(pp);
  std::vector<std::vector<int>> vs_of(pp, std::vector<int>(v));
  for (int s = 0; s < pp; ++s) {
    cap[s] = activation_bound(p, s);
    out[s].reserve(static_cast<size_t>(3) * m * v);
    for (int c = 0; c < v; ++c) vs_of[s][c] = virtual_stage(p, s, c);
  }
  int64_t remaining = int64_t{3} * m * v * pp;
  // Every step some stage can move (the critical microbatch's next op is
  // always ready), so this bound only guards against a bug.
  const int64_t limit = int64_t{3} * m * v * pp + 2 * nvs + 16;
  for (int t = 0; remaining > 0; ++t) {
    if (t > limit) fail(Status::Internal, "zero-bubble schedule generation made no progress");
    for (int s = 0; s < pp; ++s) {
      if (left[s] == 0) continue;
      // A forward the activation bound allows (oldest microbatch, then the
      // later virtual stage); else a ready B (the same order); else the
      // oldest pending W. Forwards first keeps every later stage fed;
      // the bound keeps it from running ahead of 1F1B's memory.
      int fc = -1, fvs = -1, bc = -1, bvs = -1;
      for (int c = 0; c < v; ++c) {
        const int vs = vs_of[s][c];
        const int f = nextf[s][c], b = nextb[s][c];
        if (held[s] < cap[s] && f < m && (vs == 0 || fend[at(vs - 1, f)] <= t) &&
            (fc < 0 || f < nextf[s][fc] || (f == nextf[s][fc] && vs > fvs)))
          fc = c, fvs = vs;
        if (b < m && fend[at(vs, b)] <= t && (vs + 1 == nvs || bend[at(vs + 1, b)] <= t) &&
            (bc < 0 || b < nextb[s][bc] || (b == nextb[s][bc] && vs > bvs)))
          bc = c, bvs = vs;
      }
      if (fc >= 0) {
        const int mb = nextf[s][fc]++;
        fend[at(fvs, mb)] = t + 1;
        ++held[s];
        out[s].push_back(compute(OpKind::Forward, mb, fc));
      } else if (bc >= 0) {
        const int mb = nextb[s][bc]++;
        bend[at(bvs, mb)] = t + 1;
        --held[s];
        out[s].push_back(compute(OpKind::BackwardInput, mb, bc));
        pending_w[s].push_back(compute(OpKind::BackwardWeight, mb, bc));
      } else if (!pending_w[s].empty()) {
        out[s].push_back(pending_w[s].front());
        pending_w[s].pop_front();
      } else {
        continue;
      }
      --left[s];
      --remaining;
    }
  }
  return out;
}

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
    case ScheduleKind::ZbH1:
    case ScheduleKind::ZbV:
      return std::move(zero_bubble_orders(p)[static_cast<size_t>(stage)]);
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

Neighbours neighbours(const ScheduleParams &p, int stage, int chunk) {
  const int vs = virtual_stage(p, stage, chunk), last = p.pp * p.chunks - 1;
  Neighbours n;
  if (vs > 0) n.prev = stage_chunk(p, vs - 1).stage;
  if (vs < last) n.next = stage_chunk(p, vs + 1).stage;
  if (n.prev == stage) n.prev = -1;
  if (n.next == stage) n.next = -1;
  return n;
}

// The compute order with its exchanges (build_schedule).
std::vector<Op> with_exchanges(const ScheduleParams &p, int stage, const std::vector<Op> &order) {
  std::vector<Op> out;
  int batch = 0;
  auto recv_for = [&](const Op &c, std::vector<Op> &group) {
    const Neighbours n = neighbours(p, stage, c.chunk);
    if (c.kind == OpKind::Forward && n.prev >= 0)
      group.push_back(Op{OpKind::RecvActivation, c.microbatch, c.chunk, n.prev, 0});
    if (is_backward(c.kind) && n.next >= 0)
      group.push_back(Op{OpKind::RecvGradient, c.microbatch, c.chunk, n.next, 0});
  };
  auto send_for = [&](const Op &c, std::vector<Op> &group) {
    const Neighbours n = neighbours(p, stage, c.chunk);
    if (c.kind == OpKind::Forward && n.next >= 0)
      group.push_back(Op{OpKind::SendActivation, c.microbatch, c.chunk, n.next, 0});
    if (is_backward(c.kind) && n.prev >= 0)
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

}  // namespace

std::vector<Op> build_schedule(const ScheduleParams &p, int stage) {
  return with_exchanges(p, stage, compute_order(p, stage));
}

std::vector<std::vector<Op>> build_all(const ScheduleParams &p) {
  validate(p);
  const int64_t total = int64_t{p.pp} * p.microbatches * p.chunks;  // each factor <= 2^20 (validate)
  if (total > kMaxAllSlots)
    invalid("pp x microbatches x chunks = " + std::to_string(total) + " is above the " +
            std::to_string(kMaxAllSlots) + " that every stage's schedule together may hold");
  std::vector<std::vector<Op>> all;
  if (splits_backward(p.kind)) {  // generated for every stage at once
    all = zero_bubble_orders(p);
    for (int s = 0; s < p.pp; ++s) all[s] = with_exchanges(p, s, all[s]);
    return all;
  }
  for (int s = 0; s < p.pp; ++s) all.push_back(build_schedule(p, s));
  return all;
}

}  // namespace smp::pipeline
