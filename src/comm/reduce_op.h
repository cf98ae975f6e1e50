// Reduction operators (values match smp_op_t) and their names.
#pragma once

namespace smp::comm {

enum class ReduceOp : int { Sum = 0, Avg, Max, Min, Prod };
inline constexpr int kNumReduceOps = 5;

inline bool reduce_op_valid(int v) { return v >= 0 && v < kNumReduceOps; }

inline const char *reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "SUM";
    case ReduceOp::Avg: return "AVG";
    case ReduceOp::Max: return "MAX";
    case ReduceOp::Min: return "MIN";
    case ReduceOp::Prod: return "PROD";
  }
  return "?";
}

}  // namespace smp::comm
