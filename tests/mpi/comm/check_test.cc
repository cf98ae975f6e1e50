// SMP_CHECK=1 (set by the meson test): a collective called with different
// arguments on different ranks fails on every rank with SMP_ERR_PEER_FAILED
// and a message naming the ranks and what differs, instead of hanging or
// corrupting memory; the group stays usable afterwards.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "mpi_main.h"

namespace {

int me() { int r = 0; smp_rank(SMP_WORLD, &r); return r; }
int nranks() { int s = 0; smp_size(SMP_WORLD, &s); return s; }

// The last rank is the odd one out.
bool odd_one() { return me() == nranks() - 1; }

void expect_mismatch(smp_status_t st, const std::string &needle) {
  EXPECT_EQ(st, SMP_ERR_PEER_FAILED) << smp_last_error();
  EXPECT_NE(std::strstr(smp_last_error(), needle.c_str()), nullptr)
      << "message '" << smp_last_error() << "' lacks '" << needle << "'";
}

std::string last() { return "rank " + std::to_string(nranks() - 1) + " called "; }

TEST(Check, CountMismatch) {
  std::vector<float> a(16, 1), b(16);
  expect_mismatch(smp_allreduce(a.data(), b.data(), odd_one() ? 9 : 8, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr),
                  last() + "allreduce(dtype=F32, op=SUM, count=9)");
}

TEST(Check, DtypeOpAndKindMismatch) {
  std::vector<int32_t> a(16, 1), b(16 * 8);
  expect_mismatch(smp_allreduce(a.data(), b.data(), 4, odd_one() ? SMP_INT32 : SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr),
                  "dtype=I32");
  expect_mismatch(smp_allreduce(a.data(), b.data(), 4, SMP_INT32, odd_one() ? SMP_MAX : SMP_MIN, SMP_WORLD, nullptr),
                  "op=MAX");
  const smp_status_t st = odd_one() ? smp_allgather(a.data(), b.data(), 4, SMP_INT32, SMP_WORLD, nullptr)
                                    : smp_reduce_scatter(b.data(), a.data(), 4, SMP_INT32, SMP_SUM, SMP_WORLD, nullptr);
  expect_mismatch(st, last() + "allgather(dtype=I32, count=4)");
  expect_mismatch(st, "rank 0 called reduce_scatter");
}

TEST(Check, RootMismatch) {
  std::vector<double> a(4, 1);
  expect_mismatch(smp_broadcast(a.data(), 4, SMP_FLOAT64, odd_one() ? 0 : nranks() - 1, SMP_WORLD, nullptr),
                  "root=0");
}

TEST(Check, GathervCountsMismatch) {
  const int n = nranks();
  std::vector<size_t> counts(static_cast<size_t>(n), 3);
  counts[static_cast<size_t>(n - 1)] = 4;  // root expects 4 from the last rank, which sends 3
  std::vector<int8_t> send(3, 1), recv(static_cast<size_t>(3 * n + 1));
  if (n == 1) return;
  expect_mismatch(smp_gatherv(send.data(), 3, recv.data(), counts.data(), SMP_INT8, 0, SMP_WORLD, nullptr),
                  "rank " + std::to_string(n - 1) + " sends 3 elements");
}

TEST(Check, NonBlockingMismatchFailsAtWait) {
  std::vector<float> a(16, 1), b(16);
  smp_request_t r = nullptr;
  ASSERT_EQ(smp_iallreduce(a.data(), b.data(), odd_one() ? 5 : 6, SMP_FLOAT32, SMP_SUM, SMP_TP_GROUP, nullptr, &r),
            SMP_SUCCESS);
  int tp = 1;
  smp_size(SMP_TP_GROUP, &tp);
  const smp_status_t st = smp_wait(r);
  // Does my TP group hold the odd one out? (Only that group disagrees.)
  int odd = odd_one() ? 1 : 0, group_has_odd = 0;
  ASSERT_EQ(smp_allreduce(&odd, &group_has_odd, 1, SMP_INT32, SMP_MAX, SMP_TP_GROUP, nullptr), SMP_SUCCESS);
  if (tp == 1 || !group_has_odd) {
    EXPECT_EQ(st, SMP_SUCCESS) << smp_last_error();
  } else {
    EXPECT_EQ(st, SMP_ERR_PEER_FAILED) << smp_last_error();
  }
}

TEST(Check, MatchingCallsStillWorkAfterMismatches) {
  std::vector<int64_t> a(5, me()), b(5);
  ASSERT_EQ(smp_allreduce(a.data(), b.data(), 5, SMP_INT64, SMP_SUM, SMP_WORLD, nullptr), SMP_SUCCESS)
      << smp_last_error();
  EXPECT_EQ(b[4], static_cast<int64_t>(nranks()) * (nranks() - 1) / 2);
  EXPECT_EQ(smp_barrier(SMP_WORLD), SMP_SUCCESS);
}

}  // namespace

int main(int argc, char **argv) { return smp::test::run_all_ranks(argc, argv); }
