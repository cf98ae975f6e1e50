// The simulator against closed forms: GPipe and 1F1B on uniform stages
// with free transfers take (m + p - 1)(f + b), a bubble of
// (p - 1)/(m + p - 1); Megatron's interleaving divides the bubble by the
// chunk count; hand-derived cases with transfer times and non-uniform
// stages.
#include <gtest/gtest.h>

#include <vector>

#include "common/error.h"
#include "pipeline/simulate.h"

using namespace smp::pipeline;

namespace {

Simulation run(ScheduleKind k, int pp, int m, int chunks, int active, std::vector<double> f,
               std::vector<double> b, double ta = 0, double tg = 0) {
  ScheduleParams p;
  p.kind = k;
  p.pp = pp;
  p.microbatches = m;
  p.chunks = chunks;
  p.active = active;
  return simulate(build_all(p), Costs{f, b, ta, tg, {}, {}});
}

}  // namespace

TEST(Simulate, ClosedFormGPipeAnd1F1B) {
  for (ScheduleKind k : {ScheduleKind::Simple, ScheduleKind::Interleaved})
    for (int p = 1; p <= 8; ++p)
      for (int m = 1; m <= 32; ++m)
        for (auto [f, b] : {std::pair{1.0, 2.0}, std::pair{0.5, 0.5}, std::pair{3.0, 1.0}}) {
          const Simulation s = run(k, p, m, 1, 0, std::vector<double>(p, f), std::vector<double>(p, b));
          const double step = (m + p - 1) * (f + b);
          ASSERT_NEAR(s.step_time, step, 1e-9 * step) << schedule_kind_name(k) << " p=" << p << " m=" << m;
          ASSERT_NEAR(s.bubble_fraction, double(p - 1) / (m + p - 1), 1e-12)
              << schedule_kind_name(k) << " p=" << p << " m=" << m;
        }
}

TEST(Simulate, VirtualDividesBubbleByChunks) {
  // Megatron-LM (Narayanan et al. 2021): with v chunks per rank, each 1/v of
  // a stage's work, the bubble is (p - 1)/v per m*(f+b) of work, so the
  // idle fraction is (p - 1)/(v*m + p - 1). Checked for m = p (Megatron
  // then runs every forward first) up to m = 4p.
  for (int p = 2; p <= 8; ++p)
    for (int v = 2; v <= 4; ++v)
      for (int mult = 1; mult <= 4; ++mult) {
        const int m = p * mult;
        const double f = 1.0 / v, b = 2.0 / v;
        const Simulation s = run(ScheduleKind::Virtual, p, m, v, 0, std::vector<double>(p, f),
                                 std::vector<double>(p, b));
        ASSERT_NEAR(s.bubble_fraction, double(p - 1) / (v * m + p - 1), 1e-9)
            << "p=" << p << " v=" << v << " m=" << m;
      }
}

TEST(Simulate, SerialWhenOneInFlight) {
  // active=1: each microbatch goes all the way down and back alone.
  for (int p = 1; p <= 6; ++p) {
    const Simulation s = run(ScheduleKind::Interleaved, p, 5, 1, 1, std::vector<double>(p, 1.0),
                             std::vector<double>(p, 2.0));
    EXPECT_NEAR(s.step_time, 5.0 * p * 3.0, 1e-9);
    for (int a : s.peak_activations) EXPECT_EQ(a, 1);
  }
}

TEST(Simulate, TransferTimes) {
  // One microbatch over p stages: p forwards, p backwards, p-1 hops each way.
  for (int p = 1; p <= 6; ++p) {
    const Simulation s = run(ScheduleKind::Interleaved, p, 1, 1, 0, std::vector<double>(p, 1.0),
                             std::vector<double>(p, 2.0), 0.5, 0.25);
    EXPECT_NEAR(s.step_time, p * 3.0 + (p - 1) * 0.75, 1e-9);
  }
  // GPipe, p=2, m=2, f=1, b=2, transfer t, worked by hand:
  // stage 0: F0 [0,1], issues act0 at 1; F1 [1,2], issues act1 at 2.
  // stage 1: act0 lands 1+t, F0 [1+t,2+t]; act1 lands 2+2t, F1 [2+2t,3+2t];
  //          B0 [3+2t,5+2t], issues grad0; B1 [5+2t,7+2t], issues grad1.
  // stage 0: grad0 lands 5+3t, B0 [5+3t,7+3t]; grad1 lands 7+4t (issued at
  //          7+2t, its receive posted at 7+3t), B1 [7+4t,9+4t].
  const double t = 0.5;
  const Simulation s = run(ScheduleKind::Simple, 2, 2, 1, 0, {1, 1}, {2, 2}, t, t);
  EXPECT_NEAR(s.step_time, 9 + 4 * t, 1e-12);
  EXPECT_NEAR(s.bubble_fraction, 1 - 12.0 / (2 * (9 + 4 * t)), 1e-12);
}

TEST(Simulate, SlowestStageBounds) {
  // Non-uniform stages: stage 1 is three times slower. Under 1F1B it never
  // starves (the downstream stages return each gradient before it finishes
  // the forward it overlaps with: worked by hand for m=3), so the step is
  // stage 0's first forward + stage 1's m*(f+b) + stage 0's last backward.
  const std::vector<double> f{1, 3, 1, 1}, b{2, 6, 2, 2};
  for (int m = 4; m <= 16; m *= 2) {
    const Simulation s = run(ScheduleKind::Interleaved, 4, m, 1, 0, f, b);
    EXPECT_NEAR(s.step_time, 1.0 + m * 9.0 + 2.0, 1e-9) << m;
    EXPECT_NEAR(s.busy[1], m * 9.0, 1e-12);
    EXPECT_NEAR(s.bubble_fraction, 1 - (m * 3.0 * 3 + m * 9.0) / (4 * (m * 9.0 + 3)), 1e-12);
  }
}

TEST(Simulate, BadCosts) {
  ScheduleParams p;
  p.pp = 2;
  const auto stages = build_all(p);
  EXPECT_THROW(simulate(stages, Costs{{1.0}, {1.0, 1.0}, 0, 0, {}, {}}), smp::Error);
  EXPECT_THROW(simulate(stages, Costs{{1.0, -1.0}, {1.0, 1.0}, 0, 0, {}, {}}), smp::Error);
  EXPECT_THROW(simulate(stages, Costs{{1.0, 1.0}, {1.0, 1.0}, -1, 0, {}, {}}), smp::Error);
}
