// Schedules: every valid (kind, pp, microbatches, chunks) proved complete
// and deadlock-free by check_schedule; known orders spelled out by hand; and
// the checker itself shown to catch broken schedules (so the sweep means
// something).
#include <gtest/gtest.h>

#include <functional>

#include <string>
#include <vector>

#include "common/error.h"
#include "pipeline/schedule.h"
#include "pipeline/simulate.h"

using namespace smp::pipeline;

namespace {

std::string compute_string(const ScheduleParams &p, int stage) {
  std::string s;
  for (const Op &o : compute_order(p, stage)) {
    if (!s.empty()) s += ' ';
    s += (o.kind == OpKind::Forward ? "F" : "B") + std::to_string(o.microbatch);
    if (p.chunks > 1) s += "." + std::to_string(o.chunk);
  }
  return s;
}

ScheduleParams params(ScheduleKind k, int pp, int m, int chunks = 1, int active = 0) {
  ScheduleParams p;
  p.kind = k;
  p.pp = pp;
  p.microbatches = m;
  p.chunks = chunks;
  p.active = active;
  return p;
}

}  // namespace

TEST(Schedule, SweepSimpleComplete) {
  for (int pp = 1; pp <= 8; ++pp)
    for (int m = 1; m <= 32; ++m)
      for (int v = 1; v <= 4; ++v)
        ASSERT_EQ(check_schedule(params(ScheduleKind::Simple, pp, m, v)), "")
            << "pp=" << pp << " m=" << m << " chunks=" << v;
}

TEST(Schedule, SweepInterleavedComplete) {
  for (int pp = 1; pp <= 8; ++pp)
    for (int m = 1; m <= 32; ++m)
      for (int active : {0, 1, 2, 3, pp, pp + 2, 40})
        ASSERT_EQ(check_schedule(params(ScheduleKind::Interleaved, pp, m, 1, active)), "")
            << "pp=" << pp << " m=" << m << " active=" << active;
}

TEST(Schedule, SweepVirtualComplete) {
  int checked = 0;
  for (int pp = 1; pp <= 8; ++pp)
    for (int m = 1; m <= 32; ++m)
      for (int v = 1; v <= 4; ++v) {
        if (v > 1 && m % pp != 0) continue;  // rejected, tested below
        ASSERT_EQ(check_schedule(params(ScheduleKind::Virtual, pp, m, v)), "")
            << "pp=" << pp << " m=" << m << " chunks=" << v;
        ++checked;
      }
  EXPECT_GT(checked, 300);
}

TEST(Schedule, OneFOneBByHand) {
  // pp=4, m=8: stage s warms up with pp-s-1 forwards, then alternates.
  auto p = params(ScheduleKind::Interleaved, 4, 8);
  EXPECT_EQ(compute_string(p, 0), "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7");
  EXPECT_EQ(compute_string(p, 2), "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 B7");
  EXPECT_EQ(compute_string(p, 3), "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7");
  // The cap: active=2 holds at most 2 microbatches anywhere.
  EXPECT_EQ(compute_string(params(ScheduleKind::Interleaved, 4, 4, 1, 2), 0), "F0 F1 B0 F2 B1 F3 B2 B3");
  // Fewer microbatches than stages: every forward, then every backward.
  EXPECT_EQ(compute_string(params(ScheduleKind::Interleaved, 4, 2), 0), "F0 F1 B0 B1");
}

TEST(Schedule, SimpleAndVirtualByHand) {
  EXPECT_EQ(compute_string(params(ScheduleKind::Simple, 2, 3), 1), "F0 F1 F2 B0 B1 B2");
  EXPECT_EQ(compute_string(params(ScheduleKind::Simple, 2, 2, 2), 0), "F0.0 F1.0 F0.1 F1.1 B0.1 B1.1 B0.0 B1.0");
  // Megatron-LM, pp=2, v=2, m=4, rank 0: warmup (2-0-1)*2 + (2-1)*2 = 4.
  EXPECT_EQ(compute_string(params(ScheduleKind::Virtual, 2, 4, 2), 0),
            "F0.0 F1.0 F0.1 F1.1 F2.0 B0.1 F3.0 B1.1 F2.1 B0.0 F3.1 B1.0 B2.1 B3.1 B2.0 B3.0");
}

TEST(Schedule, CommunicationOps) {
  // pp=2, m=1: stage 0 forwards, sends, then receives the gradient.
  auto ops = build_schedule(params(ScheduleKind::Interleaved, 2, 1), 0);
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_EQ(ops[0], (Op{OpKind::Forward, 0, 0, -1, -1}));
  EXPECT_EQ(ops[1], (Op{OpKind::SendActivation, 0, 0, 1, 0}));
  EXPECT_EQ(ops[2], (Op{OpKind::RecvGradient, 0, 0, 1, 0}));  // same exchange
  EXPECT_EQ(ops[3], (Op{OpKind::Backward, 0, 0, -1, -1}));
  // One rank with two chunks: the activation stays local, no messages.
  for (const Op &o : build_schedule(params(ScheduleKind::Virtual, 1, 3, 2), 0))
    EXPECT_TRUE(is_compute(o.kind));
  // Peak activations: 1F1B holds pp - stage, GPipe all of them.
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(peak_activations(build_schedule(params(ScheduleKind::Interleaved, 4, 8), s)), 4 - s);
    EXPECT_EQ(peak_activations(build_schedule(params(ScheduleKind::Simple, 4, 8), s)), 8);
    EXPECT_EQ(peak_activations(build_schedule(params(ScheduleKind::Interleaved, 4, 8, 1, 2), s)),
              s < 2 ? 2 : 4 - s);
  }
}

TEST(Schedule, InvalidParameters) {
  auto message = [](const ScheduleParams &p) {
    try {
      validate(p);
    } catch (const smp::Error &e) {
      EXPECT_EQ(e.status(), smp::Status::InvalidArgument);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(params(ScheduleKind::Virtual, 4, 6, 2)).find("multiple of pp"), std::string::npos);
  EXPECT_NE(message(params(ScheduleKind::Interleaved, 4, 8, 2)).find("chunks=2"), std::string::npos);
  EXPECT_NE(message(params(ScheduleKind::Simple, 4, 8, 1, 3)).find("interleaved schedule only"), std::string::npos);
  EXPECT_NE(message(params(ScheduleKind::Simple, 0, 8)).find("pp must be >= 1"), std::string::npos);
  EXPECT_NE(message(params(ScheduleKind::Simple, 2, 0)).find("microbatches"), std::string::npos);
  EXPECT_NE(message(params(static_cast<ScheduleKind>(7), 2, 2)).find("kind 7"), std::string::npos);
  EXPECT_THROW(build_schedule(params(ScheduleKind::Simple, 2, 2), 2), smp::Error);
  EXPECT_THROW(parse_schedule_kind("zigzag"), smp::Error);
  EXPECT_EQ(parse_schedule_kind("1f1b"), ScheduleKind::Interleaved);
}

// Products of huge parameters: InvalidArgument naming them, before any
// allocation, never an int overflow (2^31 microbatch-chunks used to give an
// empty schedule and success).
TEST(Schedule, HugeParametersAreInvalid) {
  auto message = [](const std::function<void()> &f) {
    try {
      f();
    } catch (const smp::Error &e) {
      EXPECT_EQ(e.status(), smp::Status::InvalidArgument) << e.what();
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const int big = 1 << 16;
  EXPECT_NE(message([&] { validate(params(ScheduleKind::Virtual, 2, big, big)); }).find("microbatches x chunks"),
            std::string::npos);
  EXPECT_NE(message([&] { build_schedule(params(ScheduleKind::Simple, 2, 2147483647, 2), 0); })
                .find("= 4294967294 is above"),
            std::string::npos);
  EXPECT_NE(message([&] { validate(params(ScheduleKind::Simple, 2147483647, 1, 2)); }).find("pp x chunks"),
            std::string::npos);
  EXPECT_NE(message([&] { build_all(params(ScheduleKind::Interleaved, 1 << 12, 1 << 12)); }).find("every stage"),
            std::string::npos);
  // At the bounds themselves, one stage's schedule builds.
  EXPECT_EQ(compute_order(params(ScheduleKind::Simple, 1, 1 << 20), 0).size(), size_t{2} << 20);
}

// The checker must reject broken schedules; otherwise the sweeps prove nothing.
TEST(Schedule, CheckerCatchesDeadlock) {
  // 1F1B, pp=4, m=8, with stage 2 waiting for its first gradient before it
  // sends its first activation on: stage 3 can never produce that gradient.
  auto stages = build_all(params(ScheduleKind::Interleaved, 4, 8));
  auto &ops = stages[2];
  size_t send = 0, recv = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind == OpKind::SendActivation && send == 0) send = i;
    if (ops[i].kind == OpKind::RecvGradient && recv == 0) recv = i;
  }
  ASSERT_LT(send, recv);
  Op r = ops[recv];
  r.batch = 999;  // an exchange of its own, before the send
  ops.erase(ops.begin() + static_cast<long>(recv));
  ops.insert(ops.begin() + static_cast<long>(send), r);
  smp::pipeline::Costs c{std::vector<double>(4, 1.0), std::vector<double>(4, 2.0), 0, 0, {}, {}};
  try {
    simulate(stages, c);
    FAIL() << "a receive ordered before the send it depends on did not deadlock";
  } catch (const smp::Error &e) {
    EXPECT_EQ(e.status(), smp::Status::Internal);
    EXPECT_NE(std::string(e.what()).find("deadlock: stage 0 waits at"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("stage 2 waits at"), std::string::npos) << e.what();
  }
}

TEST(Schedule, CheckerCatchesMismatches) {
  smp::pipeline::Costs c{std::vector<double>(2, 1.0), std::vector<double>(2, 2.0), 0, 0, {}, {}};
  auto stages = build_all(params(ScheduleKind::Simple, 2, 2));
  // Stage 1 receives microbatch 1 first: the messages no longer pair up.
  for (Op &o : stages[1])
    if (o.kind == OpKind::RecvActivation) o.microbatch = 1 - o.microbatch;
  EXPECT_THROW(simulate(stages, c), smp::Error);
  // A missing receive.
  stages = build_all(params(ScheduleKind::Simple, 2, 2));
  for (size_t i = 0; i < stages[1].size(); ++i)
    if (stages[1][i].kind == OpKind::RecvActivation) {
      stages[1].erase(stages[1].begin() + static_cast<long>(i));
      break;
    }
  try {
    simulate(stages, c);
    FAIL() << "missing receive not caught";
  } catch (const smp::Error &e) {
    EXPECT_NE(std::string(e.what()).find("2 sends but 1 receives"), std::string::npos) << e.what();
  }
}
