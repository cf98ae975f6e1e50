// SMP_CHECK=1 (set by the meson test): a rank that names another group
// than its peers fails at once on every rank of both calls, with a message
// naming both calls and ranks, instead of hanging until SMP_TIMEOUT (set
// high by the meson test, so a hang fails the test by time). Correct
// programs in which groups run different collectives at the same time still
// pass, and after a mismatch the groups stay usable.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "mpi_main.h"

namespace {

int me() { int r = 0; smp_rank(SMP_WORLD, &r); return r; }
int nranks() { int s = 0; smp_size(SMP_WORLD, &s); return s; }
int group_size(smp_group_t g) { int s = 0; smp_size(g, &s); return s; }
int group_rank(smp_group_t g) { int r = 0; smp_rank(g, &r); return r; }

const char *name(smp_group_t g) {
  static const char *names[] = {"WORLD", "PP_GROUP", "TP_GROUP", "DP_GROUP", "RDP_GROUP", "MP_GROUP"};
  return names[g];
}

// The group the odd rank (the last) names instead of WORLD: the smallest
// one with at least two members (same size on every rank, so every rank
// picks the same). It may hold every rank (3 ranks, pp 3): a group of the
// same members is still another communicator, and would hang.
smp_group_t odd_group() {
  smp_group_t best = SMP_WORLD;
  for (smp_group_t g : {SMP_TP_GROUP, SMP_PP_GROUP, SMP_RDP_GROUP, SMP_DP_GROUP, SMP_MP_GROUP}) {
    const int s = group_size(g);
    if (s >= 2 && (best == SMP_WORLD || s < group_size(best))) best = g;
  }
  return best;
}

bool odd_one() { return me() == nranks() - 1; }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void expect_group_mismatch(smp_status_t st, const std::string &odd_call, smp_group_t g,
                           const std::string &world_call) {
  const std::string msg = smp_last_error();
  EXPECT_EQ(st, SMP_ERR_PEER_FAILED) << msg;
  for (const std::string &needle :
       {std::string("SMP_CHECK: group mismatch: rank "),
        "rank " + std::to_string(nranks() - 1) + " called " + odd_call + " on " + name(g) + " [",
        " called " + world_call + " on WORLD ["})
    EXPECT_NE(msg.find(needle), std::string::npos) << "message '" << msg << "' lacks '" << needle << "'";
}

// The recovery every test ends with: a WORLD allreduce that must match on
// every rank (call numbers realigned) and sum correctly.
void expect_world_usable() {
  int64_t x = me() + 1, sum = 0;
  ASSERT_EQ(smp_allreduce(&x, &sum, 1, SMP_INT64, SMP_SUM, SMP_WORLD, nullptr), SMP_SUCCESS) << smp_last_error();
  EXPECT_EQ(sum, static_cast<int64_t>(nranks()) * (nranks() + 1) / 2);
}

// The case: one rank calls allreduce on a group, the others on WORLD.
TEST(GroupCheck, OneRankNamesAnotherGroup) {
  const smp_group_t g = odd_group();
  ASSERT_NE(g, SMP_WORLD) << "the layout has no group of two or more ranks besides WORLD";
  std::vector<float> a(4, 1), b(4);
  const auto t0 = std::chrono::steady_clock::now();
  const smp_status_t st = smp_allreduce(a.data(), b.data(), 4, SMP_FLOAT32, SMP_SUM, odd_one() ? g : SMP_WORLD, nullptr);
  EXPECT_LT(seconds_since(t0), 20.0) << "caught by SMP_TIMEOUT, not by SMP_CHECK";
  expect_group_mismatch(st, "allreduce(dtype=F32, op=SUM, count=4)", g, "allreduce(dtype=F32, op=SUM, count=4)");
  expect_world_usable();
}

// Another collective, and the group's own later calls still match.
TEST(GroupCheck, BroadcastOnAGroupAgainstBarrierOnWorld) {
  const smp_group_t g = odd_group();
  ASSERT_NE(g, SMP_WORLD);
  int v = 7;
  const smp_status_t st = odd_one() ? smp_broadcast(&v, 1, SMP_INT32, 0, g, nullptr) : smp_barrier(SMP_WORLD);
  expect_group_mismatch(st, "broadcast(dtype=I32, count=1, root=0)", g, "barrier()");
  expect_world_usable();
  // Every instance of g: an allreduce of group ranks.
  int32_t r = group_rank(g), sum = 0;
  ASSERT_EQ(smp_allreduce(&r, &sum, 1, SMP_INT32, SMP_SUM, g, nullptr), SMP_SUCCESS) << smp_last_error();
  EXPECT_EQ(sum, group_size(g) * (group_size(g) - 1) / 2);
}

// Correct programs: the instances of each group run different collectives
// at the same time (as the TP groups of different pipeline stages do), a
// rank goes from one group to another in its own order, and non-blocking
// collectives on one group overlap blocking ones on another.
TEST(GroupCheck, ConcurrentGroupsStillPass) {
  for (smp_group_t g : {SMP_TP_GROUP, SMP_PP_GROUP, SMP_DP_GROUP, SMP_RDP_GROUP, SMP_MP_GROUP}) {
    // Alike within an instance of g, different between some instances.
    const int pp = group_rank(SMP_PP_GROUP), tp = group_rank(SMP_TP_GROUP), rdp = group_rank(SMP_RDP_GROUP);
    const int color = g == SMP_TP_GROUP ? pp : g == SMP_PP_GROUP ? tp + rdp : g == SMP_DP_GROUP ? pp
                    : g == SMP_RDP_GROUP ? pp + tp : rdp;
    const int n = group_size(g);
    std::vector<int32_t> in(static_cast<size_t>(n) * 3, group_rank(g) + 1), out(static_cast<size_t>(n) * 3);
    for (int i = 0; i < 3; ++i) {
      if ((color + i) % 2 == 0) {
        ASSERT_EQ(smp_allreduce(in.data(), out.data(), 3, SMP_INT32, SMP_SUM, g, nullptr), SMP_SUCCESS)
            << name(g) << ": " << smp_last_error();
        EXPECT_EQ(out[0], n * (n + 1) / 2);
      } else {
        ASSERT_EQ(smp_allgather(in.data(), out.data(), 3, SMP_INT32, g, nullptr), SMP_SUCCESS)
            << name(g) << ": " << smp_last_error();
        EXPECT_EQ(out[static_cast<size_t>(3 * n - 1)], n);
      }
    }
  }
  // Non-blocking on DP while blocking on TP, then PP.
  std::vector<float> a(8, 1), b(8), c(8, 2), d(8);
  smp_request_t r = nullptr;
  ASSERT_EQ(smp_iallreduce(a.data(), b.data(), 8, SMP_FLOAT32, SMP_SUM, SMP_DP_GROUP, nullptr, &r), SMP_SUCCESS);
  ASSERT_EQ(smp_allreduce(c.data(), d.data(), 8, SMP_FLOAT32, SMP_MAX, SMP_TP_GROUP, nullptr), SMP_SUCCESS)
      << smp_last_error();
  ASSERT_EQ(smp_barrier(SMP_PP_GROUP), SMP_SUCCESS) << smp_last_error();
  ASSERT_EQ(smp_wait(r), SMP_SUCCESS) << smp_last_error();
  EXPECT_EQ(b[7], static_cast<float>(group_size(SMP_DP_GROUP)));
  expect_world_usable();
}

// A mismatch of arguments on one group is still the group's own message.
TEST(GroupCheck, ArgumentMismatchStillNamed) {
  const smp_group_t g = odd_group();
  std::vector<float> a(16, 1), b(16);
  const bool odd = group_rank(g) == group_size(g) - 1;
  const smp_status_t st = smp_allreduce(a.data(), b.data(), odd ? 9 : 8, SMP_FLOAT32, SMP_SUM, g, nullptr);
  EXPECT_EQ(st, SMP_ERR_PEER_FAILED) << smp_last_error();
  EXPECT_NE(std::strstr(smp_last_error(), "count=9"), nullptr) << smp_last_error();
  expect_world_usable();
}

// A group of one has nothing to compare: every collective on it returns
// its own data at once, whatever the other ranks do meanwhile (here: a
// different number of calls with different counts on each rank, and no
// calls at all on some), and sends nothing that a later checked call on
// WORLD would trip over.
TEST(GroupCheck, GroupOfOneComparesNothing) {
  int ones = 0;
  for (smp_group_t g : {SMP_TP_GROUP, SMP_PP_GROUP, SMP_DP_GROUP, SMP_RDP_GROUP, SMP_MP_GROUP}) {
    if (group_size(g) != 1) continue;
    ++ones;
    const int n = me() + 1;  // this rank's count and number of rounds
    std::vector<int32_t> in(static_cast<size_t>(n), me() + 5), out(static_cast<size_t>(n));
    const size_t counts[1] = {static_cast<size_t>(n)};
    for (int round = 0; round < 3 * n; ++round) {
      ASSERT_EQ(smp_allreduce(in.data(), out.data(), n, SMP_INT32, SMP_SUM, g, nullptr), SMP_SUCCESS)
          << name(g) << ": " << smp_last_error();
      ASSERT_EQ(smp_reduce_scatter(in.data(), out.data(), n, SMP_INT32, SMP_MAX, g, nullptr), SMP_SUCCESS)
          << smp_last_error();
      ASSERT_EQ(smp_allgather(in.data(), out.data(), n, SMP_INT32, g, nullptr), SMP_SUCCESS) << smp_last_error();
      ASSERT_EQ(smp_broadcast(out.data(), n, SMP_INT32, 0, g, nullptr), SMP_SUCCESS) << smp_last_error();
      ASSERT_EQ(smp_gatherv(in.data(), n, out.data(), counts, SMP_INT32, 0, g, nullptr), SMP_SUCCESS)
          << smp_last_error();
      ASSERT_EQ(smp_barrier(g), SMP_SUCCESS) << smp_last_error();
      smp_request_t r = nullptr;
      ASSERT_EQ(smp_iallreduce(in.data(), out.data(), n, SMP_INT32, SMP_SUM, g, nullptr, &r), SMP_SUCCESS);
      ASSERT_EQ(smp_wait(r), SMP_SUCCESS) << smp_last_error();
      EXPECT_EQ(out[static_cast<size_t>(n - 1)], me() + 5);
    }
  }
  RecordProperty("groups_of_one", ones);
  expect_world_usable();
}

}  // namespace

int main(int argc, char **argv) { return smp::test::run_all_ranks(argc, argv); }
