// One Communicator operation as data: every public method fills a Call and
// hands it to Communicator::run, which validates it (comm/validate.h),
// looks up the memory type once, picks the backend, scopes the watchdog,
// verifies it under SMP_CHECK and performs it. What differs per operation
// lives in one row of kCallKinds below and in the switches over Op, not in
// fourteen copies of the same preamble.
#pragma once

#include <cstddef>

#include "common/dtype.h"
#include "comm/check.h"
#include "comm/reduce_op.h"

namespace smp::comm {

enum class Op : int {
  Allreduce, ReduceScatter, Allgather, Allgatherv, Broadcast, Gatherv, Barrier, Reduce, Scatterv,
  Alltoallv, Send, Recv, RecvAny, Isend, Irecv, Iallreduce, IreduceScatter, Iallgather,
};

// What run() needs to know about an operation besides its arguments.
struct CallKind {
  const char *name;       // the call as the user made it: messages and the watchdog line
  CollKind coll;          // SMP_CHECK's descriptor kind; 0: not checked (point-to-point)
  bool reduces;           // has a ReduceOp (validated, and compared under SMP_CHECK)
  bool on_worker;         // non-blocking collective: runs on the group's worker thread
  const char *wait_name;  // non-blocking point-to-point: the watchdog line of its wait; else null
};

inline constexpr CallKind kCallKinds[] = {
    {"allreduce", CollKind::Allreduce, true, false, nullptr},
    {"reduce_scatter", CollKind::ReduceScatter, true, false, nullptr},
    {"allgather", CollKind::Allgather, false, false, nullptr},
    {"allgatherv", CollKind::Allgatherv, false, false, nullptr},
    {"broadcast", CollKind::Broadcast, false, false, nullptr},
    {"gatherv", CollKind::Gatherv, false, false, nullptr},
    {"barrier", CollKind::Barrier, false, false, nullptr},
    {"reduce", CollKind::Reduce, true, false, nullptr},
    {"scatterv", CollKind::Scatterv, false, false, nullptr},
    {"alltoallv", CollKind::Alltoallv, false, false, nullptr},
    {"send", CollKind{}, false, false, nullptr},
    {"recv", CollKind{}, false, false, nullptr},
    {"recv_any", CollKind{}, false, false, nullptr},
    {"isend", CollKind{}, false, false, "isend (wait)"},
    {"irecv", CollKind{}, false, false, "irecv (wait)"},
    {"iallreduce", CollKind::Iallreduce, true, true, nullptr},
    {"ireduce_scatter", CollKind::IreduceScatter, true, true, nullptr},
    {"iallgather", CollKind::Iallgather, false, true, nullptr},
};
static_assert(sizeof(kCallKinds) / sizeof(kCallKinds[0]) == static_cast<size_t>(Op::Iallgather) + 1,
              "one row per Op, in Op's order");
inline const CallKind &call_kind(Op op) { return kCallKinds[static_cast<int>(op)]; }

// The arguments, under one set of names (unused ones keep their defaults):
//   count   count / sendcount (allgather, allgatherv, gatherv) / recvcount
//           (reduce_scatter, scatterv); the point-to-point count
//   send    sendbuf; send / isend's buf
//   recv    recvbuf; broadcast, recv, irecv, recv_any's buf
//   counts  gatherv / allgatherv's recvcounts, scatterv / alltoallv's sendcounts
//   displs  alltoallv's sdispls; counts2 / displs2: its recvcounts / rdispls
struct Call {
  explicit Call(Op o) : op(o) {}

  Op op;
  const void *send = nullptr;
  void *recv = nullptr;
  size_t count = 0;
  DType dtype = DType::U8;
  ReduceOp reduce = ReduceOp::Sum;
  int root = -1, peer = -1, tag = -1;
  const size_t *counts = nullptr, *displs = nullptr, *counts2 = nullptr, *displs2 = nullptr;
  void *stream = nullptr;

  const char *name() const { return call_kind(op).name; }
};

// What validation learnt that the rest of run() uses: the buffers whose
// memory type picks the backend (b null: a alone), and the count the
// watchdog shows and SMP_CHECK compares (alltoallv: the sum of sendcounts).
struct CallExtent {
  const void *a = nullptr, *b = nullptr;
  size_t count = 0;
};

}  // namespace smp::comm
