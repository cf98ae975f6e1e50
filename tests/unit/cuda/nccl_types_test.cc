// smp dtypes and ops as NCCL's (compiled against the CUDA 13 / NCCL 2.28
// headers): every dtype maps to the NCCL type of the same width and kind,
// AVG is ncclAvg for floats and declined for integers (smp truncates an
// exact integer sum; those calls take the staged path).
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
  for (int t = 0; t < kNumDTypes; ++t) {
    const auto d = static_cast<DType>(t);
    ASSERT_TRUE(nccl_op(ReduceOp::Sum, d, &op));
    EXPECT_EQ(op, ncclSum);
    ASSERT_TRUE(nccl_op(ReduceOp::Prod, d, &op));
    EXPECT_EQ(op, ncclProd);
    ASSERT_TRUE(nccl_op(ReduceOp::Max, d, &op));
    EXPECT_EQ(op, ncclMax);
    ASSERT_TRUE(nccl_op(ReduceOp::Min, d, &op));
    EXPECT_EQ(op, ncclMin);
    const bool fl = d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16;
    EXPECT_EQ(nccl_op(ReduceOp::Avg, d, &op), fl) << dtype_name(d);
    if (fl) {
      EXPECT_EQ(op, ncclAvg);
    }
  }
}

}  // namespace
}  // namespace smp::comm::nccl
