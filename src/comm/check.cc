#include "comm/check.h"

#include "common/hash.h"

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
    case CollKind::Reduce: return "reduce";
    case CollKind::Scatterv: return "scatterv";
    case CollKind::Alltoallv: return "alltoallv";
    case CollKind::Allgatherv: return "allgatherv";
  }
  return "unknown";
}

std::string describe_call(const CallDesc &d) {
  std::string s = d.kind >= 1 && d.kind <= static_cast<int64_t>(CollKind::Allgatherv)
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
  const bool counts_matter = a.kind != static_cast<int64_t>(CollKind::Gatherv) &&
                             a.kind != static_cast<int64_t>(CollKind::Scatterv) &&
                             a.kind != static_cast<int64_t>(CollKind::Alltoallv) &&
                             a.kind != static_cast<int64_t>(CollKind::Allgatherv);
  return a.kind == b.kind && a.dtype == b.dtype && a.op == b.op && a.root == b.root &&
         a.memory == b.memory && a.members == b.members && (!counts_matter || a.count == b.count);
}

std::string compare_calls(const std::vector<CallDesc> &calls, const char *group_name) {
  if (calls.empty()) return "";
  std::string diff;
  for (size_t r = 1; r < calls.size(); ++r) {
    if (same_call(calls[0], calls[r])) continue;
    diff += ", rank " + std::to_string(r) + " called " + describe_call(calls[r]);
    if (calls[r].members != calls[0].members)
      diff += std::string(" on a ") + group_name +
              " of other members (the ranks' SMP_PP_SIZE / SMP_TP_SIZE / SMP_PLACEMENT differ)";
  }
  if (diff.empty()) return "";
  return std::string("SMP_CHECK: collective mismatch on ") + group_name + ": rank 0 called " +
         describe_call(calls[0]) + diff;
}

int64_t members_hash(const std::vector<int> &members) {
  // FNV-1a over the ranks and the count: cheap, and a collision only hides
  // a disagreement that init's communicator split would trip over anyway.
  Fnv1a f;
  f.u64(members.size());
  for (int m : members) f.u64(static_cast<uint64_t>(static_cast<uint32_t>(m)));
  return static_cast<int64_t>(f.h & 0x7fffffffffffffffull);
}

std::string describe_group(const char *group_name, const std::vector<int> &members) {
  std::string s = std::string(group_name) + " [";
  const size_t shown = members.size() <= 8 ? members.size() : 6;
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + std::to_string(members[i]);
  if (shown < members.size())
    s += ", ..., " + std::to_string(members.back()) + "] (" + std::to_string(members.size()) + " ranks)";
  else
    s += "]";
  return s;
}

std::string group_mismatch_message(int rank_a, const CallDesc &call_a, const std::string &group_a,
                                   int rank_b, const CallDesc &call_b, const std::string &group_b) {
  if (rank_b < rank_a) return group_mismatch_message(rank_b, call_b, group_b, rank_a, call_a, group_a);
  return "SMP_CHECK: group mismatch: rank " + std::to_string(rank_a) + " called " + describe_call(call_a) +
         " on " + group_a + " while rank " + std::to_string(rank_b) + " called " + describe_call(call_b) +
         " on " + group_b + " (world ranks)";
}

}  // namespace smp::comm
