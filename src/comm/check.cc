#include "comm/check.h"

namespace smp::comm {

const char *coll_kind_name(CollKind k) {
  switch (k) {
    case CollKind::Allreduce: return "allreduce";
    case CollKind::ReduceScatter: return "reduce_scatter";
    case CollKind::Allgather: return "allgather";
    case CollKind::Broadcast: return "broadcast";
    case CollKind::Gatherv: return "gatherv";
    case CollKind::Barrier: return "barrier";
    case CollKind::Iallreduce: return "iallreduce";
    case CollKind::IreduceScatter: return "ireduce_scatter";
    case CollKind::Iallgather: return "iallgather";
  }
  return "unknown";
}

std::string describe_call(const CallDesc &d) {
  std::string s = d.kind >= 1 && d.kind <= static_cast<int64_t>(CollKind::Iallgather)
                      ? coll_kind_name(static_cast<CollKind>(d.kind))
                      : "unknown#" + std::to_string(d.kind);
  s += "(";
  std::string sep;
  if (d.dtype >= 0) {
    s += "dtype=" + std::string(dtype_valid(static_cast<int>(d.dtype))
                                    ? dtype_name(static_cast<DType>(d.dtype))
                                    : "?");
    sep = ", ";
  }
  if (d.op >= 0) {
    s += sep + "op=" +
         (reduce_op_valid(static_cast<int>(d.op)) ? reduce_op_name(static_cast<ReduceOp>(d.op)) : "?");
    sep = ", ";
  }
  if (d.kind != static_cast<int64_t>(CollKind::Barrier)) {
    s += sep + "count=" + std::to_string(d.count);
    sep = ", ";
  }
  if (d.root >= 0) {
    s += sep + "root=" + std::to_string(d.root);
    sep = ", ";
  }
  if (d.memory != 0) s += sep + "memory=" + (d.memory == 1 ? "CUDA" : "?");
  return s + ")";
}

static bool same_call(const CallDesc &a, const CallDesc &b) {
  const bool counts_matter = a.kind != static_cast<int64_t>(CollKind::Gatherv);
  return a.kind == b.kind && a.dtype == b.dtype && a.op == b.op && a.root == b.root &&
         a.memory == b.memory && (!counts_matter || a.count == b.count);
}

std::string compare_calls(const std::vector<CallDesc> &calls, const char *group_name) {
  if (calls.empty()) return "";
  std::string diff;
  for (size_t r = 1; r < calls.size(); ++r) {
    if (same_call(calls[0], calls[r])) continue;
    diff += ", rank " + std::to_string(r) + " called " + describe_call(calls[r]);
  }
  if (diff.empty()) return "";
  return std::string("SMP_CHECK: collective mismatch on ") + group_name + ": rank 0 called " +
         describe_call(calls[0]) + diff;
}

}  // namespace smp::comm
