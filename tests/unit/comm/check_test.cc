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
