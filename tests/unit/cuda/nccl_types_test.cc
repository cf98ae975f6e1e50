// smp dtypes and ops as NCCL's (compiled against the CUDA 13 / NCCL 2.28
// headers): every dtype maps to the NCCL type of the same width and kind,
// AVG is ncclAvg for floats and declined for integers (smp truncates an
// exact integer sum; those calls take the staged path) on several ranks,
// and SUM on one rank (NCCL 2.28's one-rank ncclAvg skips the tail).
#include "comm/nccl/nccl_types.h"

#include <gtest/gtest.h>

namespace smp::comm::nccl {
namespace {

TEST(NcclTypes, EveryDTypeMapsToItsTwin) {
  EXPECT_EQ(nccl_type(DType::F32), ncclFloat32);
  EXPECT_EQ(nccl_type(DType::F64), ncclFloat64);
  EXPECT_EQ(nccl_type(DType::F16), ncclFloat16);
  EXPECT_EQ(nccl_type(DType::BF16), ncclBfloat16);
  EXPECT_EQ(nccl_type(DType::I8), ncclInt8);
  EXPECT_EQ(nccl_type(DType::U8), ncclUint8);
  EXPECT_EQ(nccl_type(DType::I32), ncclInt32);
  EXPECT_EQ(nccl_type(DType::I64), ncclInt64);
  for (int t = 0; t < kNumDTypes; ++t) EXPECT_NE(nccl_type(static_cast<DType>(t)), ncclNumTypes) << t;
}

TEST(NcclTypes, ReduceOps) {
  ncclRedOp_t op{};
  for (int nranks : {2, 3, 8}) {
    for (int t = 0; t < kNumDTypes; ++t) {
      const auto d = static_cast<DType>(t);
      ASSERT_TRUE(nccl_op(ReduceOp::Sum, d, nranks, &op));
      EXPECT_EQ(op, ncclSum);
      ASSERT_TRUE(nccl_op(ReduceOp::Prod, d, nranks, &op));
      EXPECT_EQ(op, ncclProd);
      ASSERT_TRUE(nccl_op(ReduceOp::Max, d, nranks, &op));
      EXPECT_EQ(op, ncclMax);
      ASSERT_TRUE(nccl_op(ReduceOp::Min, d, nranks, &op));
      EXPECT_EQ(op, ncclMin);
      const bool fl = d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16;
      EXPECT_EQ(nccl_op(ReduceOp::Avg, d, nranks, &op), fl) << dtype_name(d);
      if (fl) {
        EXPECT_EQ(op, ncclAvg);
      }
    }
  }
}

// One rank: the average is the value, every dtype, through ncclSum's copy.
TEST(NcclTypes, AvgOverOneRankIsSum) {
  for (int t = 0; t < kNumDTypes; ++t) {
    ncclRedOp_t op = ncclAvg;
    ASSERT_TRUE(nccl_op(ReduceOp::Avg, static_cast<DType>(t), 1, &op)) << t;
    EXPECT_EQ(op, ncclSum) << t;
  }
}

}  // namespace
}  // namespace smp::comm::nccl
