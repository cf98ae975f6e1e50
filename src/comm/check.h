// SMP_CHECK: before a collective, every rank of the group shares a small
// descriptor of the call (an allgather of a few int64), and every rank
// compares them, so a mismatch (different operation, dtype, op, count,
// root, or host memory on one rank and CUDA memory on another, which take
// different backends and communicators) becomes the same error on every
// rank instead of a hang or silently corrupted memory. The comparison is
// pure and unit-tested here.
//
// Blocking collectives also compare the group each rank named: their
// descriptors travel on a world-level channel (comm/call_checker.h), since
// an exchange on the group's own communicator cannot complete when a member
// named another group. Non-blocking ones keep the allgather above (their
// worker thread runs only that group's calls).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "comm/reduce_op.h"

namespace smp::comm {

// Which collective a rank called; values travel between ranks.
enum class CollKind : int64_t {
  Allreduce = 1, ReduceScatter, Allgather, Broadcast, Gatherv, Barrier,
  Iallreduce, IreduceScatter, Iallgather,
  Reduce, Scatterv, Alltoallv,
  Allgatherv,
};
const char *coll_kind_name(CollKind k);

struct CallDesc {
  int64_t kind = 0;   // CollKind
  int64_t dtype = -1; // DType, -1 for none (barrier)
  int64_t op = -1;    // ReduceOp, -1 for none
  int64_t count = 0;  // the count argument (gatherv: this rank's sendcount)
  int64_t root = -1;  // -1 for none
  int64_t memory = 0; // 0: host memory, 1: CUDA memory
  int64_t members = 0;  // members_hash of the group as this rank sees it
};
inline constexpr int kCallDescWords = 7;

// "" when all descriptors agree; otherwise one message saying which ranks
// differ from rank 0 and in what, e.g. "SMP_CHECK: collective mismatch on
// TP_GROUP: rank 0 called allreduce(dtype=F32, op=SUM, count=8), rank 2
// called allreduce(dtype=F32, op=SUM, count=9)". The counts of gatherv,
// scatterv, alltoallv and allgatherv may differ by design and are not compared here
// (Communicator::verify compares them with root's / the peers' counts).
std::string compare_calls(const std::vector<CallDesc> &calls, const char *group_name);

// Text of one call, e.g. "broadcast(dtype=I32, count=4, root=1)".
std::string describe_call(const CallDesc &d);

// A group's member list (world ranks) as one word; equal lists, equal
// hashes. Ranks whose layouts disagree (SMP_PP_SIZE, SMP_TP_SIZE,
// SMP_PLACEMENT) see different members under one group name.
int64_t members_hash(const std::vector<int> &members);

// A group and its world ranks, e.g. "TP_GROUP [2, 3]" (at most 8 listed,
// then "... (N ranks)").
std::string describe_group(const char *group_name, const std::vector<int> &members);

// The message every rank involved in a group mismatch reports: world rank
// a called call_a on group_a (describe_group text), world rank b called
// call_b on group_b. Ordered by rank, so both sides and every notified
// rank print the same text.
std::string group_mismatch_message(int rank_a, const CallDesc &call_a, const std::string &group_a,
                                   int rank_b, const CallDesc &call_b, const std::string &group_b);

}  // namespace smp::comm
