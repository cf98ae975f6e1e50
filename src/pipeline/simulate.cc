#include "pipeline/simulate.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <tuple>

#include "common/error.h"

namespace smp::pipeline {

namespace {

std::string describe(const Op &o) {
  std::ostringstream s;
  s << op_kind_name(o.kind) << "(mb " << o.microbatch << ", chunk " << o.chunk;
  if (!is_compute(o.kind)) s << (is_send(o.kind) ? ", to " : ", from ") << o.peer;
  s << ")";
  return s.str();
}

bool is_activation(OpKind k) { return k == OpKind::SendActivation || k == OpKind::RecvActivation; }

// Pairs every communication op with its counterpart: the k-th send on a
// channel (source, destination, activation or gradient) with the k-th
// receive. counterpart[s][i] = {stage, index}.
using Where = std::pair<int, int>;
std::vector<std::vector<Where>> pair_up(const std::vector<std::vector<Op>> &stages,
                                         const ScheduleParams &layout) {
  const int pp = static_cast<int>(stages.size());
  using Channel = std::tuple<int, int, bool>;
  std::map<Channel, std::vector<Where>> sends, recvs;
  std::vector<std::vector<Where>> counterpart(pp);
  for (int s = 0; s < pp; ++s) {
    counterpart[s].assign(stages[s].size(), Where{-1, -1});
    for (int i = 0; i < static_cast<int>(stages[s].size()); ++i) {
      const Op &o = stages[s][i];
      if (is_compute(o.kind)) continue;
      if (o.peer < 0 || o.peer >= pp || o.peer == s)
        invalid("stage " + std::to_string(s) + " op " + std::to_string(i) + " " + describe(o) +
                " names an invalid peer");
      if (is_send(o.kind))
        sends[Channel{s, o.peer, is_activation(o.kind)}].push_back({s, i});
      else
        recvs[Channel{o.peer, s, is_activation(o.kind)}].push_back({s, i});
    }
  }
  auto name = [](const Channel &c) {
    return std::string(std::get<2>(c) ? "activations" : "gradients") + " from stage " +
           std::to_string(std::get<0>(c)) + " to stage " + std::to_string(std::get<1>(c));
  };
  for (const auto &[ch, list] : sends) {
    const auto it = recvs.find(ch);
    const size_t nr = it == recvs.end() ? 0 : it->second.size();
    if (nr != list.size())
      invalid(name(ch) + ": " + std::to_string(list.size()) + " sends but " + std::to_string(nr) +
              " receives");
    for (size_t k = 0; k < list.size(); ++k) {
      const auto [ss, si] = list[k];
      const auto [rs, ri] = it->second[k];
      const Op &a = stages[ss][si], &b = stages[rs][ri];
      // The message's source virtual stage, as each side sees it: the
      // receiver's chunk is its own, one virtual stage away.
      const int src_vs = virtual_stage(layout, ss, a.chunk);
      const int expect_vs = virtual_stage(layout, rs, b.chunk) + (std::get<2>(ch) ? -1 : 1);
      if (a.microbatch != b.microbatch || src_vs != expect_vs)
        invalid(name(ch) + ": message " + std::to_string(k) + " is sent as " + describe(a) +
                " but received as " + describe(b));
      counterpart[ss][si] = {rs, ri};
      counterpart[rs][ri] = {ss, si};
    }
  }
  for (const auto &[ch, list] : recvs)
    if (!sends.count(ch))
      invalid(name(ch) + ": " + std::to_string(list.size()) + " receives but no sends");
  return counterpart;
}

size_t batch_end(const std::vector<Op> &ops, size_t i) {
  size_t e = i;
  while (e < ops.size() && !is_compute(ops[e].kind) && ops[e].batch == ops[i].batch) ++e;
  return e;
}

}  // namespace

int peak_activations(const std::vector<Op> &ops) {
  int held = 0, peak = 0;
  for (const Op &o : ops) {
    if (o.kind == OpKind::Forward) peak = std::max(peak, ++held);
    if (is_backward(o.kind)) --held;
  }
  return peak;
}

Simulation simulate(const std::vector<std::vector<Op>> &stages, const Costs &costs,
                    const ScheduleParams *layout) {
  const int pp = static_cast<int>(stages.size());
  if (pp < 1) invalid("simulate: no stages");
  if (static_cast<int>(costs.forward.size()) != pp || static_cast<int>(costs.backward.size()) != pp)
    invalid("simulate: need " + std::to_string(pp) + " forward and backward times, got " +
            std::to_string(costs.forward.size()) + " and " + std::to_string(costs.backward.size()));
  for (const auto *split : {&costs.backward_input, &costs.backward_weight})
    if (!split->empty() && static_cast<int>(split->size()) != pp)
      invalid("simulate: need " + std::to_string(pp) + " backward-input and backward-weight times (or none), got " +
              std::to_string(split->size()));
  std::vector<double> bin(pp), bw(pp);
  for (int s = 0; s < pp; ++s) {
    bin[s] = costs.backward_input.empty() ? costs.backward[s] / 2 : costs.backward_input[s];
    bw[s] = costs.backward_weight.empty() ? costs.backward[s] / 2 : costs.backward_weight[s];
    if (!(costs.forward[s] >= 0) || !(costs.backward[s] >= 0) || !(bin[s] >= 0) || !(bw[s] >= 0))
      invalid("simulate: stage " + std::to_string(s) + " has a negative or NaN time");
  }
  if (!(costs.activation_transfer >= 0) || !(costs.gradient_transfer >= 0))
    invalid("simulate: transfer times must be >= 0");
  ScheduleParams megatron;
  megatron.pp = pp;
  const ScheduleParams &where = layout != nullptr ? *layout : megatron;
  if (where.pp != pp)
    invalid("simulate: the layout has pp=" + std::to_string(where.pp) + " but there are " +
            std::to_string(pp) + " stages");

  const auto counterpart = pair_up(stages, where);
  Simulation sim;
  sim.busy.assign(pp, 0.0);
  sim.times.resize(pp);
  std::vector<size_t> pos(pp, 0);
  std::vector<double> clock(pp, 0.0);
  for (int s = 0; s < pp; ++s) sim.times[s].resize(stages[s].size());

  // When each send was issued (its stage reached its exchange); -1 = not yet.
  std::vector<std::vector<double>> issued(pp);
  for (int s = 0; s < pp; ++s) issued[s].assign(stages[s].size(), -1.0);

  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < pp; ++s) {
      const auto &ops = stages[s];
      while (pos[s] < ops.size()) {
        const Op &o = ops[pos[s]];
        if (is_compute(o.kind)) {
          const double d = o.kind == OpKind::Forward         ? costs.forward[s]
                           : o.kind == OpKind::BackwardInput  ? bin[s]
                           : o.kind == OpKind::BackwardWeight ? bw[s]
                                                              : costs.backward[s];
          sim.times[s][pos[s]] = {clock[s], clock[s] + d};
          clock[s] += d;
          sim.busy[s] += d;
          ++pos[s];
          progress = true;
          continue;
        }
        const size_t e = batch_end(ops, pos[s]);
        for (size_t i = pos[s]; i < e; ++i)
          if (is_send(ops[i].kind) && issued[s][i] < 0) {
            issued[s][i] = clock[s];
            progress = true;
          }
        // The exchange is over once every receive in it has its data; the
        // sends complete in the background.
        bool all = true;
        double done = clock[s];
        for (size_t i = pos[s]; i < e; ++i) {
          if (is_send(ops[i].kind)) continue;
          const auto [t, j] = counterpart[s][i];
          const double sent = issued[t][j];
          if (sent < 0) {
            all = false;
            break;
          }
          const double start = std::max(clock[s], sent);
          const double d =
              is_activation(ops[i].kind) ? costs.activation_transfer : costs.gradient_transfer;
          sim.times[s][i] = {start, start + d};
          sim.times[t][j] = {sent, start + d};
          done = std::max(done, start + d);
        }
        if (!all) break;
        for (size_t i = pos[s]; i < e; ++i)
          if (is_send(ops[i].kind)) sim.times[s][i].start = issued[s][i];
        clock[s] = done;
        pos[s] = e;
        progress = true;
      }
    }
  }

  std::string stuck;
  for (int s = 0; s < pp; ++s)
    if (pos[s] < stages[s].size())
      stuck += (stuck.empty() ? "" : "; ") + std::string("stage ") + std::to_string(s) +
               " waits at op " + std::to_string(pos[s]) + " " + describe(stages[s][pos[s]]);
  if (!stuck.empty()) fail(Status::Internal, "deadlock: " + stuck);

  for (int s = 0; s < pp; ++s) {
    sim.step_time = std::max(sim.step_time, clock[s]);
    sim.peak_activations.push_back(peak_activations(stages[s]));
  }
  double busy = 0;
  for (double b : sim.busy) busy += b;
  sim.bubble_fraction = sim.step_time > 0 ? 1.0 - busy / (pp * sim.step_time) : 0.0;
  return sim;
}

std::string check_schedule(const ScheduleParams &p) {
  std::vector<std::vector<Op>> stages;
  try {
    stages = build_all(p);
  } catch (const Error &e) {
    return std::string("cannot build: ") + e.what();
  }
  return check_stages(p, stages);
}

std::string check_stages(const ScheduleParams &p, const std::vector<std::vector<Op>> &stages) {
  try {
    validate(p);
  } catch (const Error &e) {
    return std::string("bad parameters: ") + e.what();
  }
  const int pp = p.pp, m = p.microbatches, v = p.chunks;
  if (static_cast<int>(stages.size()) != pp)
    return std::to_string(stages.size()) + " stage lists for pp=" + std::to_string(pp);
  const bool split = splits_backward(p.kind);
  // Where each compute op is: index [stage][chunk][mb] -> op index.
  auto idx = [&](int c, int mb) { return static_cast<size_t>(c) * m + mb; };
  std::vector<std::vector<int>> fwd(pp, std::vector<int>(static_cast<size_t>(v) * m, -1)),
      bwd = fwd, wgt = fwd;
  for (int s = 0; s < pp; ++s) {
    // What the executor holds: tensors received (activations, gradients)
    // and produced to send, by (chunk, mb); a compute op whose input comes
    // from another stage must come after its receive, a send after the
    // compute op that makes its tensor.
    std::vector<char> got_act(static_cast<size_t>(v) * m, 0), got_grad = got_act, made_act = got_act,
                                                                made_grad = got_act;
    for (int i = 0; i < static_cast<int>(stages[s].size()); ++i) {
      const Op &o = stages[s][i];
      const std::string at = "stage " + std::to_string(s) + " op " + std::to_string(i) + " " + describe(o);
      if (o.microbatch < 0 || o.microbatch >= m || o.chunk < 0 || o.chunk >= v) return at + " is out of range";
      const size_t k = idx(o.chunk, o.microbatch);
      const int vs = virtual_stage(p, s, o.chunk);
      switch (o.kind) {
        case OpKind::RecvActivation: got_act[k] = 1; break;
        case OpKind::RecvGradient: got_grad[k] = 1; break;
        case OpKind::SendActivation:
          if (!made_act[k]) return at + ": sent before its forward ran";
          break;
        case OpKind::SendGradient:
          if (!made_grad[k]) return at + ": sent before its backward ran";
          break;
        case OpKind::Forward:
          if (vs > 0 && stage_chunk(p, vs - 1).stage != s && !got_act[k])
            return at + ": runs before its input activation is received";
          made_act[k] = 1;
          break;
        case OpKind::Backward:
        case OpKind::BackwardInput:
          if (vs + 1 < pp * v && stage_chunk(p, vs + 1).stage != s && !got_grad[k])
            return at + ": runs before its output gradient is received";
          made_grad[k] = 1;
          break;
        case OpKind::BackwardWeight: break;
      }
      if (!is_compute(o.kind)) continue;
      if (split ? o.kind == OpKind::Backward : o.kind != OpKind::Forward && o.kind != OpKind::Backward)
        return at + ": the " + schedule_kind_name(p.kind) + " schedule " +
               (split ? "splits every backward into backward_input and backward_weight"
                      : "does not split the backward");
      auto &where = o.kind == OpKind::Forward ? fwd : o.kind == OpKind::BackwardWeight ? wgt : bwd;
      int &slot = where[s][idx(o.chunk, o.microbatch)];
      if (slot >= 0) return "stage " + std::to_string(s) + " runs " + describe(o) + " twice";
      slot = i;
    }
    for (int c = 0; c < v; ++c)
      for (int mb = 0; mb < m; ++mb) {
        const std::string what = "stage " + std::to_string(s) + " microbatch " +
                                  std::to_string(mb) + " chunk " + std::to_string(c);
        const int f = fwd[s][idx(c, mb)], b = bwd[s][idx(c, mb)], w = wgt[s][idx(c, mb)];
        if (f < 0) return what + " is never forwarded";
        if (b < 0) return what + (split ? " never runs its backward_input" : " is never backwarded");
        if (split && w < 0) return what + " never runs its backward_weight";
        if (b < f) return what + ": backward before forward";
        if (split && w < b) return what + ": backward_weight before backward_input";
      }
    const int bound = activation_bound(p, s), peak = peak_activations(stages[s]);
    if (bound >= 0 && peak > bound)
      return "stage " + std::to_string(s) + " holds " + std::to_string(peak) + " activations at once; the " +
             schedule_kind_name(p.kind) + " schedule allows " + std::to_string(bound);
  }
  // Unit forward, twice that backward (B and W one each), some transfer
  // time: every dependency then shows as a strict order on the clock.
  Costs costs{std::vector<double>(pp, 1.0), std::vector<double>(pp, 2.0), 0.25, 0.25, {}, {}};
  Simulation sim;
  try {
    sim = simulate(stages, costs, &p);
  } catch (const Error &e) {
    return e.what();
  }
  auto at = [&](const std::vector<std::vector<int>> &where, int vs, int mb) {
    const StageChunk sc = stage_chunk(p, vs);
    return sim.times[sc.stage][where[sc.stage][idx(sc.chunk, mb)]];
  };
  const int nvs = pp * v;
  for (int mb = 0; mb < m; ++mb)
    for (int vs = 0; vs < nvs; ++vs) {
      const std::string what = "microbatch " + std::to_string(mb) + " virtual stage " + std::to_string(vs);
      if (vs > 0 && at(fwd, vs, mb).start < at(fwd, vs - 1, mb).end)
        return what + ": forward starts before the previous stage's forward ended";
      if (vs + 1 < nvs && at(bwd, vs, mb).start < at(bwd, vs + 1, mb).end)
        return what + ": backward starts before the next stage's backward ended";
      if (at(bwd, vs, mb).start < at(fwd, vs, mb).end) return what + ": backward before its forward ended";
      if (split && at(wgt, vs, mb).start < at(bwd, vs, mb).end)
        return what + ": backward_weight before its backward_input ended";
    }
  return "";
}

}  // namespace smp::pipeline
