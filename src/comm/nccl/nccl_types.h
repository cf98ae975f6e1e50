// smp's element types and reduction operators as NCCL's. Every smp dtype
// has an NCCL twin; AVG is ncclAvg for floating types. Integer AVG over
// several ranks is not mapped (smp truncates toward zero after an exact
// sum, which ncclAvg does not promise), so those calls take the staged path.
#pragma once

#include <nccl.h>

#include "common/dtype.h"
#include "comm/reduce_op.h"

namespace smp::comm::nccl {

inline ncclDataType_t nccl_type(DType t) {
  switch (t) {
    case DType::F32: return ncclFloat32;
    case DType::F64: return ncclFloat64;
    case DType::F16: return ncclFloat16;
    case DType::BF16: return ncclBfloat16;
    case DType::I8: return ncclInt8;
    case DType::U8: return ncclUint8;
    case DType::I32: return ncclInt32;
    case DType::I64: return ncclInt64;
  }
  return ncclNumTypes;
}

inline bool is_float(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
}

// False when NCCL cannot do op on t the way smp.h defines it, for a
// communicator of `nranks` ranks. AVG over one rank is SUM (the value
// itself, for every dtype): NCCL 2.28's one-rank kernel for ncclAvg
// (oneRankReduce, a pre-multiplied sum) gives block b the elements
// [b*q, (b+1)*q) with q = n/blocks rounded up to 16 bytes, so when n/blocks
// is already a multiple the last n - blocks*q elements are never written.
// Seen on an H200: of 70001 float32 elements, those from 69984 = 24*2916 on
// came back wrong. ncclSum on one rank is a plain copy.
inline bool nccl_op(ReduceOp op, DType t, int nranks, ncclRedOp_t *out) {
  switch (op) {
    case ReduceOp::Sum: *out = ncclSum; return true;
    case ReduceOp::Prod: *out = ncclProd; return true;
    case ReduceOp::Max: *out = ncclMax; return true;
    case ReduceOp::Min: *out = ncclMin; return true;
    case ReduceOp::Avg:
      if (nranks == 1) {
        *out = ncclSum;
        return true;
      }
      *out = ncclAvg;
      return is_float(t);
  }
  return false;
}

}  // namespace smp::comm::nccl
