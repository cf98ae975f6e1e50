// The zero-bubble schedules (zb-h1, zb-v) and the split backward in the
// simulator and the checker: every schedule, old and new, proven complete,
// in dependency order, deadlock-free and within its activation bound over
// pp 2..8, microbatches pp..4pp; the simulated bubbles against the closed
// forms (F = B = W = 1, free transfers); and mutations of the new
// schedules (two ops swapped, a W dropped) caught by the checker.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "pipeline/schedule.h"
#include "pipeline/simulate.h"

using namespace smp::pipeline;

namespace {

ScheduleParams params(ScheduleKind k, int pp, int m, int chunks = 1) {
  ScheduleParams p;
  p.kind = k;
  p.pp = pp;
  p.microbatches = m;
  p.chunks = chunks;
  return p;
}

// Unit forward, B and W (a whole backward 2), free transfers.
Simulation unit_run(const ScheduleParams &p) {
  Costs c{std::vector<double>(p.pp, 1.0), std::vector<double>(p.pp, 2.0), 0, 0,
          std::vector<double>(p.pp, 1.0), std::vector<double>(p.pp, 1.0)};
  return simulate(build_all(p), c, &p);
}

// Every schedule the sweep proves, for (pp, m).
std::vector<ScheduleParams> every_schedule(int pp, int m) {
  std::vector<ScheduleParams> out = {params(ScheduleKind::Simple, pp, m),
                                     params(ScheduleKind::Simple, pp, m, 2),
                                     params(ScheduleKind::Interleaved, pp, m),
                                     params(ScheduleKind::Virtual, pp, m, 1),
                                     params(ScheduleKind::ZbH1, pp, m),
                                     params(ScheduleKind::ZbV, pp, m, 2)};
  if (m % pp == 0) out.push_back(params(ScheduleKind::Virtual, pp, m, 2));
  return out;
}

int count(const std::vector<Op> &ops, OpKind k) {
  return static_cast<int>(std::count_if(ops.begin(), ops.end(), [k](const Op &o) { return o.kind == k; }));
}

}  // namespace

TEST(ZeroBubble, NamesAndLayout) {
  EXPECT_EQ(parse_schedule_kind("zb-h1"), ScheduleKind::ZbH1);
  EXPECT_EQ(parse_schedule_kind("zb-v"), ScheduleKind::ZbV);
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::ZbH1), "zb-h1");
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::ZbV), "zb-v");
  EXPECT_STREQ(op_kind_name(OpKind::BackwardInput), "backward_input");
  EXPECT_STREQ(op_kind_name(OpKind::BackwardWeight), "backward_weight");
  EXPECT_TRUE(splits_backward(ScheduleKind::ZbH1) && splits_backward(ScheduleKind::ZbV));
  EXPECT_FALSE(splits_backward(ScheduleKind::Interleaved) || splits_backward(ScheduleKind::Virtual));
  // The V: pp=4, virtual stages 0..7 on ranks 0 1 2 3 3 2 1 0.
  const ScheduleParams v = params(ScheduleKind::ZbV, 4, 4, 2);
  const int rank_of[] = {0, 1, 2, 3, 3, 2, 1, 0};
  for (int vs = 0; vs < 8; ++vs) {
    const StageChunk sc = stage_chunk(v, vs);
    EXPECT_EQ(sc.stage, rank_of[vs]) << vs;
    EXPECT_EQ(sc.chunk, vs < 4 ? 0 : 1) << vs;
    EXPECT_EQ(virtual_stage(v, sc.stage, sc.chunk), vs);
  }
  // Megatron's layout for the others.
  const ScheduleParams m = params(ScheduleKind::Virtual, 4, 4, 2);
  EXPECT_EQ(virtual_stage(m, 1, 1), 5);
  EXPECT_EQ(stage_chunk(m, 6).stage, 2);
}

TEST(ZeroBubble, InvalidParameters) {
  EXPECT_THROW(validate(params(ScheduleKind::ZbH1, 1, 4)), smp::Error);     // pp >= 2
  EXPECT_THROW(validate(params(ScheduleKind::ZbH1, 4, 3)), smp::Error);     // m >= pp
  EXPECT_THROW(validate(params(ScheduleKind::ZbH1, 2, 4, 2)), smp::Error);  // one chunk
  EXPECT_THROW(validate(params(ScheduleKind::ZbV, 2, 4, 1)), smp::Error);   // two chunks
  EXPECT_THROW(validate(params(ScheduleKind::ZbV, 2, 4, 3)), smp::Error);
  ScheduleParams a = params(ScheduleKind::ZbH1, 2, 4);
  a.active = 1;
  EXPECT_THROW(validate(a), smp::Error);
  try {
    validate(params(ScheduleKind::ZbV, 4, 2, 2));
    FAIL();
  } catch (const smp::Error &e) {
    EXPECT_NE(std::string(e.what()).find("microbatches >= pp"), std::string::npos) << e.what();
  }
}

// Each stage of a split schedule runs F, B and W once per (microbatch,
// chunk), and the unsplit schedules never run B or W.
TEST(ZeroBubble, OpCounts) {
  for (int pp = 2; pp <= 5; ++pp)
    for (const ScheduleParams &p : every_schedule(pp, 2 * pp)) {
      const auto stages = build_all(p);
      const int n = p.microbatches * p.chunks;
      for (int s = 0; s < pp; ++s) {
        const bool split = splits_backward(p.kind);
        EXPECT_EQ(count(stages[s], OpKind::Forward), n);
        EXPECT_EQ(count(stages[s], OpKind::Backward), split ? 0 : n);
        EXPECT_EQ(count(stages[s], OpKind::BackwardInput), split ? n : 0);
        EXPECT_EQ(count(stages[s], OpKind::BackwardWeight), split ? n : 0);
        // build_schedule (one stage) and build_all agree.
        EXPECT_EQ(build_schedule(p, s), stages[s]) << schedule_kind_name(p.kind) << " stage " << s;
      }
    }
}

// The proof over the whole grid: complete, in dependency order,
// deadlock-free under the transport's rules, within the activation bound;
// the peak the simulator reports is the list's own.
TEST(ZeroBubble, SweepEveryScheduleChecks) {
  for (int pp = 2; pp <= 8; ++pp)
    for (int m = pp; m <= 4 * pp; ++m)
      for (const ScheduleParams &p : every_schedule(pp, m)) {
        const std::string what = std::string(schedule_kind_name(p.kind)) + " pp=" + std::to_string(pp) +
                                 " m=" + std::to_string(m) + " chunks=" + std::to_string(p.chunks);
        ASSERT_EQ(check_schedule(p), "") << what;
        const auto stages = build_all(p);
        const Simulation sim = unit_run(p);
        for (int s = 0; s < pp; ++s) {
          ASSERT_EQ(sim.peak_activations[s], peak_activations(stages[s])) << what;
          const int bound = activation_bound(p, s);
          if (bound >= 0) {
            ASSERT_LE(sim.peak_activations[s], bound) << what << " stage " << s;
          }
        }
      }
}

// ZB-H1 keeps 1F1B's memory stage by stage; ZB-V stays within 1F1B's
// first stage (pp microbatches of two chunks) on every stage.
TEST(ZeroBubble, PeakMemoryAgainst1F1B) {
  for (int pp = 2; pp <= 8; ++pp)
    for (int m = pp; m <= 4 * pp; m += pp) {
      const Simulation f1b = unit_run(params(ScheduleKind::Interleaved, pp, m));
      const Simulation h1 = unit_run(params(ScheduleKind::ZbH1, pp, m));
      const Simulation zv = unit_run(params(ScheduleKind::ZbV, pp, m, 2));
      for (int s = 0; s < pp; ++s) {
        EXPECT_EQ(f1b.peak_activations[s], pp - s);
        EXPECT_LE(h1.peak_activations[s], f1b.peak_activations[s]) << pp << " " << m << " " << s;
        EXPECT_LE(zv.peak_activations[s], 2 * f1b.peak_activations[0]) << pp << " " << m << " " << s;
      }
    }
}

// The closed forms with F = B = W = 1 and free transfers, in units of
// F + B + W: 1F1B (p-1)/(m+p-1); ZB-H1 (p-1)/(3m+p-1); ZB-V's floor, a
// bubble of p-1 units against 6m of work per stage, (p-1)/(6m+p-1), which
// it must come within 1.4x of.
TEST(ZeroBubble, ClosedFormBubbles) {
  for (int p = 2; p <= 8; ++p)
    for (int m = p; m <= 4 * p; ++m) {
      const std::string what = "p=" + std::to_string(p) + " m=" + std::to_string(m);
      const Simulation f1b = unit_run(params(ScheduleKind::Interleaved, p, m));
      ASSERT_NEAR(f1b.bubble_fraction, double(p - 1) / (m + p - 1), 1e-12) << what;
      ASSERT_NEAR(f1b.step_time, 3.0 * (m + p - 1), 1e-9) << what;
      const Simulation h1 = unit_run(params(ScheduleKind::ZbH1, p, m));
      ASSERT_NEAR(h1.bubble_fraction, double(p - 1) / (3 * m + p - 1), 1e-12) << what;
      ASSERT_NEAR(h1.step_time, 3.0 * m + p - 1, 1e-9) << what;
      const Simulation zv = unit_run(params(ScheduleKind::ZbV, p, m, 2));
      const double floor = double(p - 1) / (6 * m + p - 1);
      ASSERT_GE(zv.bubble_fraction, floor - 1e-12) << what;  // nothing beats the floor
      ASSERT_LE(zv.bubble_fraction, 1.4 * floor) << what;
    }
}

// The split costs are the simulator's own: W = 0 and B = the whole
// backward makes ZB-H1's work that of 1F1B's, and its step no longer.
// Unsplit schedules charge `backward` whatever B and W say.
TEST(ZeroBubble, SplitCosts) {
  for (int p = 2; p <= 6; ++p) {
    const int m = 2 * p;
    const ScheduleParams h1 = params(ScheduleKind::ZbH1, p, m), f = params(ScheduleKind::Interleaved, p, m);
    Costs c{std::vector<double>(p, 1.0), std::vector<double>(p, 2.0), 0, 0, std::vector<double>(p, 2.0),
            std::vector<double>(p, 0.0)};
    const Simulation a = simulate(build_all(h1), c, &h1), b = simulate(build_all(f), c, &f);
    EXPECT_NEAR(a.busy[0], 3.0 * m, 1e-9);
    EXPECT_NEAR(b.busy[0], 3.0 * m, 1e-9);
    EXPECT_LE(a.step_time, b.step_time + 1e-9) << p;
    // Without B and W, a split schedule's halves are backward / 2.
    Costs halves{std::vector<double>(p, 1.0), std::vector<double>(p, 2.0), 0, 0, {}, {}};
    EXPECT_NEAR(simulate(build_all(h1), halves, &h1).step_time, 3.0 * m + p - 1, 1e-9);
  }
  const ScheduleParams h1 = params(ScheduleKind::ZbH1, 2, 2);
  Costs bad{{1.0, 1.0}, {2.0, 2.0}, 0, 0, {1.0}, {1.0, 1.0}};
  EXPECT_THROW(simulate(build_all(h1), bad, &h1), smp::Error);
  bad.backward_input = {1.0, -1.0};
  EXPECT_THROW(simulate(build_all(h1), bad, &h1), smp::Error);
}

namespace {

// Index in ops of the first compute op of kind k for (mb, chunk).
size_t find(const std::vector<Op> &ops, OpKind k, int mb, int chunk = 0) {
  for (size_t i = 0; i < ops.size(); ++i)
    if (ops[i].kind == k && ops[i].microbatch == mb && ops[i].chunk == chunk) return i;
  ADD_FAILURE() << op_kind_name(k) << " mb " << mb << " not found";
  return 0;
}

}  // namespace

// Mutations of correct schedules, each of which the checker must catch
// (else the sweeps above prove nothing).
TEST(ZeroBubble, MutationsAreCaught) {
  for (const ScheduleParams &p : {params(ScheduleKind::ZbH1, 4, 8), params(ScheduleKind::ZbV, 4, 8, 2),
                                  params(ScheduleKind::ZbH1, 2, 2), params(ScheduleKind::ZbV, 3, 5, 2)}) {
    const std::string name = schedule_kind_name(p.kind);
    const auto good = build_all(p);
    ASSERT_EQ(check_stages(p, good), "");
    for (int s = 0; s < p.pp; ++s)
      for (int c = 0; c < p.chunks; ++c) {
        // Swap a B and its own W.
        auto st = good;
        std::swap(st[s][find(st[s], OpKind::BackwardInput, 1, c)], st[s][find(st[s], OpKind::BackwardWeight, 1, c)]);
        // (Caught as a send before its backward, or as W before B where
        // nothing is sent.)
        EXPECT_NE(check_stages(p, st), "") << name << " stage " << s;
        // Swap two forwards (microbatches 0 and 1) whose inputs come from
        // another stage: the second runs before its input is received.
        st = good;
        std::swap(st[s][find(st[s], OpKind::Forward, 0, c)], st[s][find(st[s], OpKind::Forward, 1, c)]);
        const int vs = virtual_stage(p, s, c);
        if (vs > 0 && stage_chunk(p, vs - 1).stage != s) {
          EXPECT_NE(check_stages(p, st).find("before its input activation is received"), std::string::npos)
              << name << " stage " << s << " chunk " << c << ": " << check_stages(p, st);
        }
        // Swap a forward and its own B.
        st = good;
        std::swap(st[s][find(st[s], OpKind::Forward, 0, c)], st[s][find(st[s], OpKind::BackwardInput, 0, c)]);
        EXPECT_NE(check_stages(p, st), "") << name << " stage " << s;
        // Drop a W.
        st = good;
        st[s].erase(st[s].begin() + static_cast<long>(find(st[s], OpKind::BackwardWeight, p.microbatches - 1, c)));
        EXPECT_NE(check_stages(p, st).find("never runs its backward_weight"), std::string::npos)
            << name << ": " << check_stages(p, st);
        // A W turned into a whole backward, and a B of another schedule's kind.
        st = good;
        st[s][find(st[s], OpKind::BackwardWeight, 0, c)].kind = OpKind::Backward;
        EXPECT_NE(check_stages(p, st).find("splits every backward"), std::string::npos);
      }
  }
  // Where nothing is received or sent in between, the order itself is
  // what the checker objects to: B and W swapped in a hand-made list.
  {
    const ScheduleParams p = params(ScheduleKind::ZbH1, 2, 2);
    auto st = build_all(p);
    std::swap(st[0][find(st[0], OpKind::BackwardInput, 1)], st[0][find(st[0], OpKind::BackwardWeight, 1)]);
    EXPECT_NE(check_stages(p, st).find("backward_weight before backward_input"), std::string::npos)
        << check_stages(p, st);
  }
  // 1F1B with a W in it is not 1F1B.
  const ScheduleParams f = params(ScheduleKind::Interleaved, 2, 2);
  auto st = build_all(f);
  st[0].push_back(Op{OpKind::BackwardWeight, 0, 0, -1, -1});
  EXPECT_NE(check_stages(f, st).find("does not split the backward"), std::string::npos);
}

// A schedule holding more activations than its bound is refused: stage 0
// of ZB-H1 (bound pp) made to run every forward first.
TEST(ZeroBubble, MemoryBoundIsChecked) {
  const ScheduleParams p = params(ScheduleKind::ZbH1, 2, 4);
  auto st = build_all(p);
  std::vector<Op> fwd, rest;
  for (const Op &o : st[0]) (o.kind == OpKind::Forward || o.kind == OpKind::SendActivation ? fwd : rest).push_back(o);
  // Renumber the exchanges so each send stays its own exchange.
  std::vector<Op> all = fwd;
  all.insert(all.end(), rest.begin(), rest.end());
  int batch = 0;
  for (Op &o : all)
    if (!is_compute(o.kind)) o.batch = batch++;
  st[0] = all;
  const std::string why = check_stages(p, st);
  EXPECT_NE(why.find("holds 4 activations at once; the zb-h1 schedule allows 2"), std::string::npos) << why;
}

// Generation scales: the largest zb-v a stage may hold builds in seconds.
TEST(ZeroBubble, LargeBuilds) {
  const auto st = build_all(params(ScheduleKind::ZbV, 16, 4096, 2));
  EXPECT_EQ(count(st[3], OpKind::BackwardWeight), 2 * 4096);
}
