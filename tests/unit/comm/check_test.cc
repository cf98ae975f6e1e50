// SMP_CHECK's comparison and messages, without MPI.
#include <gtest/gtest.h>

#include "comm/check.h"

namespace smp::comm {
namespace {

CallDesc call(CollKind k, DType t, ReduceOp op, int64_t count, int64_t root = -1) {
  return CallDesc{static_cast<int64_t>(k), static_cast<int64_t>(t), static_cast<int64_t>(op), count, root};
}

TEST(Check, AgreeingCallsPass) {
  const auto c = call(CollKind::Allreduce, DType::F32, ReduceOp::Sum, 8);
  EXPECT_EQ(compare_calls({c, c, c}, "WORLD"), "");
  EXPECT_EQ(compare_calls({}, "WORLD"), "");
}

TEST(Check, NamesEveryDisagreeingRankAndWhatItCalled) {
  const auto c = call(CollKind::Allreduce, DType::F32, ReduceOp::Sum, 8);
  auto d = c;
  d.count = 9;
  auto e = c;
  e.dtype = static_cast<int64_t>(DType::BF16);
  EXPECT_EQ(compare_calls({c, d, c, e}, "TP_GROUP"),
            "SMP_CHECK: collective mismatch on TP_GROUP: rank 0 called allreduce(dtype=F32, op=SUM, count=8), "
            "rank 1 called allreduce(dtype=F32, op=SUM, count=9), rank 3 called allreduce(dtype=BF16, op=SUM, count=8)");
}

// reduce compares its count and root; scatterv's and alltoallv's counts
// differ by design (their counts are checked against root's / the peers').
TEST(Check, ReduceScattervAlltoallv) {
  const auto r = call(CollKind::Reduce, DType::F64, ReduceOp::Max, 5, 1);
  auto r2 = r;
  r2.root = 0;
  EXPECT_EQ(compare_calls({r, r2}, "group 64 (world ranks 1,0)"),
            "SMP_CHECK: collective mismatch on group 64 (world ranks 1,0): rank 0 called "
            "reduce(dtype=F64, op=MAX, count=5, root=1), rank 1 called reduce(dtype=F64, op=MAX, count=5, root=0)");
  auto r3 = r;
  r3.count = 6;
  EXPECT_NE(compare_calls({r, r3}, "WORLD"), "");
  const CallDesc s0{static_cast<int64_t>(CollKind::Scatterv), static_cast<int64_t>(DType::I8), -1, 3, 0};
  auto s1 = s0;
  s1.count = 0;
  EXPECT_EQ(compare_calls({s0, s1}, "WORLD"), "");
  s1.root = 1;
  EXPECT_NE(compare_calls({s0, s1}, "WORLD").find("rank 1 called scatterv(dtype=I8, count=0, root=1)"),
            std::string::npos);
  const CallDesc a0{static_cast<int64_t>(CollKind::Alltoallv), static_cast<int64_t>(DType::U8), -1, 3, -1};
  auto a1 = a0;
  a1.count = 7;
  EXPECT_EQ(compare_calls({a0, a1}, "WORLD"), "");
  a1.dtype = static_cast<int64_t>(DType::I32);
  EXPECT_NE(compare_calls({a0, a1}, "WORLD").find("rank 1 called alltoallv(dtype=I32, count=7)"), std::string::npos);
}

TEST(Check, DifferentCollectivesAndRoots) {
  CallDesc b0{static_cast<int64_t>(CollKind::Broadcast), static_cast<int64_t>(DType::I32), -1, 4, 0};
  CallDesc b1 = b0;
  b1.root = 1;
  EXPECT_NE(compare_calls({b0, b1}, "WORLD").find("rank 1 called broadcast(dtype=I32, count=4, root=1)"),
            std::string::npos);
  CallDesc bar{static_cast<int64_t>(CollKind::Barrier), -1, -1, 0, -1};
  EXPECT_EQ(describe_call(bar), "barrier()");
  EXPECT_NE(compare_calls({bar, b0}, "PP_GROUP").find("rank 0 called barrier(), rank 1 called broadcast"),
            std::string::npos);
}

TEST(Check, GathervCountsMayDiffer) {
  CallDesc g0{static_cast<int64_t>(CollKind::Gatherv), static_cast<int64_t>(DType::U8), -1, 3, 1};
  CallDesc g1 = g0;
  g1.count = 5;
  EXPECT_EQ(compare_calls({g0, g1}, "WORLD"), "");
  g1.root = 0;
  EXPECT_NE(compare_calls({g0, g1}, "WORLD"), "");
}

TEST(Check, AllgathervCountsMayDiffer) {
  CallDesc a0{static_cast<int64_t>(CollKind::Allgatherv), static_cast<int64_t>(DType::I64), -1, 0, -1};
  CallDesc a1 = a0;
  a1.count = 4;
  EXPECT_EQ(compare_calls({a0, a1}, "WORLD"), "");
  EXPECT_EQ(describe_call(a1), "allgatherv(dtype=I64, count=4)");
  a1.dtype = static_cast<int64_t>(DType::I32);
  EXPECT_NE(compare_calls({a0, a1}, "WORLD").find("rank 1 called allgatherv(dtype=I32, count=4)"),
            std::string::npos);
}

// Host memory on one rank and CUDA memory on another take different
// backends (and communicators): a mismatch, named.
TEST(Check, MemoryTypesMustAgree) {
  const auto c = call(CollKind::Allreduce, DType::F32, ReduceOp::Sum, 8);
  auto d = c;
  d.memory = 1;
  EXPECT_EQ(compare_calls({d, d}, "WORLD"), "");
  EXPECT_EQ(compare_calls({c, d}, "DP_GROUP"),
            "SMP_CHECK: collective mismatch on DP_GROUP: rank 0 called allreduce(dtype=F32, op=SUM, count=8), "
            "rank 1 called allreduce(dtype=F32, op=SUM, count=8, memory=CUDA)");
  CallDesc bar{static_cast<int64_t>(CollKind::Barrier), -1, -1, 0, -1, 1};
  EXPECT_EQ(describe_call(bar), "barrier(memory=CUDA)");
}

TEST(Check, GarbageFromAConfusedPeerIsDescribedNotTrusted) {
  CallDesc junk{999, 77, 55, 1, -1, 5};
  EXPECT_EQ(describe_call(junk), "unknown#999(dtype=?, op=?, count=1, memory=?)");
}

}  // namespace
}  // namespace smp::comm
