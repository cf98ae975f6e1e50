#include "comm/validate.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "common/error.h"

namespace smp::comm::validate {

static std::string S(const char *op) { return std::string(op) + ": "; }

void dtype(const char *op, DType t) {
  if (!dtype_valid(static_cast<int>(t)))
    invalid(S(op) + "dtype " + std::to_string(static_cast<int>(t)) + " is not a valid dtype");
}

void reduce_op(const char *op, ReduceOp r) {
  if (!reduce_op_valid(static_cast<int>(r)))
    invalid(S(op) + "op " + std::to_string(static_cast<int>(r)) +
            " is not a valid reduction (SUM, AVG, MAX, MIN, PROD)");
}

void pointer(const char *op, const char *name, const void *p, size_t count) {
  if (p == nullptr && count > 0)
    invalid(S(op) + name + " is NULL but count is " + std::to_string(count));
}

size_t bytes(const char *op, const char *name, size_t count, size_t multiplier, DType t) {
  const size_t es = dtype_size(t);
  const size_t limit = static_cast<size_t>(std::numeric_limits<int64_t>::max());
  if (multiplier != 0 && count > limit / multiplier / es)
    invalid(S(op) + name + " " + std::to_string(count) + (multiplier > 1 ? " x " + std::to_string(multiplier) : "") +
            " elements of " + dtype_name(t) + " overflow the addressable size");
  return count * multiplier * es;
}

void rank(const char *op, const char *name, int r, int size) {
  if (r < 0 || r >= size)
    invalid(S(op) + name + " " + std::to_string(r) + " is out of range: the group has " +
            std::to_string(size) + " rank" + (size == 1 ? "" : "s") + " (0.." +
            std::to_string(size - 1) + ")");
}

void tag(const char *op, int t, int max_tag) {
  if (t < 0 || t > max_tag)
    invalid(S(op) + "tag " + std::to_string(t) + " is out of range (0.." + std::to_string(max_tag) + ")");
}

void no_overlap(const char *op, const void *s, size_t sbytes, const void *r, size_t rbytes,
                const void *in_place_send) {
  if (s == nullptr || r == nullptr || sbytes == 0 || rbytes == 0) return;
  if (s == in_place_send) return;
  const auto a = reinterpret_cast<uintptr_t>(s), b = reinterpret_cast<uintptr_t>(r);
  if (a < b + rbytes && b < a + sbytes)
    invalid(S(op) + "sendbuf and recvbuf overlap without being the in-place form");
}

}  // namespace smp::comm::validate

namespace smp::comm::validate {

namespace {

const char *at(const void *p, size_t elems, size_t es) {
  return p ? static_cast<const char *>(p) + elems * es : nullptr;
}

// A v-collective's per-rank counts (gatherv, allgatherv: recvcounts;
// scatterv: sendcounts): each fits, and so does their sum, which it returns.
size_t count_list(const char *op, const char *name, const size_t *counts, int size, DType t) {
  size_t total = 0;
  for (int r = 0; r < size; ++r) {
    const std::string each = std::string(name) + "[" + std::to_string(r) + "]";
    bytes(op, each.c_str(), counts[r], 1, t);
    if (total + counts[r] < total) invalid(S(op) + "the sum of " + name + " overflows");
    total += counts[r];
  }
  bytes(op, (std::string("the sum of ") + name).c_str(), total, 1, t);
  return total;
}

size_t sum_before(const size_t *counts, int r) {
  size_t before = 0;
  for (int i = 0; i < r; ++i) before += counts[i];
  return before;
}

// alltoallv: the end of one side's furthest block, in elements; *sum gets
// the side's total.
size_t extent(const char *op, const char *counts_name, const size_t *counts, const char *displs_name,
              const size_t *displs, int size, DType t, size_t *sum) {
  size_t end = 0;
  *sum = 0;
  for (int r = 0; r < size; ++r) {
    const std::string c = std::string(counts_name) + "[" + std::to_string(r) + "]";
    bytes(op, c.c_str(), counts[r], 1, t);
    if (counts[r] == 0) continue;
    if (displs[r] + counts[r] < displs[r])
      invalid(S(op) + displs_name + "[" + std::to_string(r) + "] + " + c + " overflows");
    end = std::max(end, displs[r] + counts[r]);
    if (*sum + counts[r] < *sum) invalid(S(op) + "the sum of " + counts_name + " overflows");
    *sum += counts[r];
  }
  return end;
}

CallExtent alltoallv(const char *op, const Call &c, int rank, int size) {
  pointer(op, "sendcounts", c.counts, 1);
  pointer(op, "sdispls", c.displs, 1);
  pointer(op, "recvcounts", c.counts2, 1);
  pointer(op, "rdispls", c.displs2, 1);
  size_t sendtotal = 0, recvtotal = 0;
  const size_t send_end = extent(op, "sendcounts", c.counts, "sdispls", c.displs, size, c.dtype, &sendtotal);
  const size_t recv_end = extent(op, "recvcounts", c.counts2, "rdispls", c.displs2, size, c.dtype, &recvtotal);
  const size_t sbytes = bytes(op, "the extent of sdispls + sendcounts", send_end, 1, c.dtype);
  const size_t rbytes = bytes(op, "the extent of rdispls + recvcounts", recv_end, 1, c.dtype);
  bytes(op, "the sum of sendcounts", sendtotal, 1, c.dtype);
  pointer(op, "sendbuf", c.send, send_end);
  pointer(op, "recvbuf", c.recv, recv_end);
  if (c.counts[rank] != c.counts2[rank])
    invalid(S(op) + "sendcounts[" + std::to_string(rank) + "] is " + std::to_string(c.counts[rank]) +
            " but recvcounts[" + std::to_string(rank) + "] is " + std::to_string(c.counts2[rank]) +
            " (this rank's block to itself)");
  no_overlap(op, c.send, sbytes, c.recv, rbytes, nullptr);
  return {send_end ? c.send : c.recv, recv_end ? c.recv : nullptr, sendtotal};
}

}  // namespace

CallExtent call(const Call &c, int rank, int size, int max_tag) {
  const char *op = c.name();
  const size_t n = static_cast<size_t>(size);
  if (c.op == Op::Barrier) return {};
  dtype(op, c.dtype);
  const size_t es = dtype_size(c.dtype);
  switch (c.op) {
    case Op::Allreduce:
    case Op::Iallreduce: {
      reduce_op(op, c.reduce);
      const size_t b = bytes(op, "count", c.count, 1, c.dtype);
      pointer(op, "sendbuf", c.send, c.count);
      pointer(op, "recvbuf", c.recv, c.count);
      no_overlap(op, c.send, b, c.recv, b, c.recv);
      return {c.send, c.recv, c.count};
    }
    case Op::ReduceScatter:
    case Op::IreduceScatter: {
      reduce_op(op, c.reduce);
      const size_t total = bytes(op, "recvcount", c.count, n, c.dtype);
      pointer(op, "sendbuf", c.send, c.count);
      pointer(op, "recvbuf", c.recv, c.count);
      const void *in_place = at(c.send, static_cast<size_t>(rank) * c.count, es);
      no_overlap(op, c.send, total, c.recv, c.count * es, c.recv == in_place ? c.send : nullptr);
      return {c.send, c.recv, c.count};
    }
    case Op::Allgather:
    case Op::Iallgather: {
      const size_t total = bytes(op, "sendcount", c.count, n, c.dtype);
      pointer(op, "sendbuf", c.send, c.count);
      pointer(op, "recvbuf", c.recv, c.count);
      const void *in_place = at(c.recv, static_cast<size_t>(rank) * c.count, es);
      no_overlap(op, c.send, c.count * es, c.recv, total, in_place);
      return {c.send, c.recv, c.count};
    }
    case Op::Allgatherv: {
      bytes(op, "sendcount", c.count, 1, c.dtype);
      pointer(op, "sendbuf", c.send, c.count);
      pointer(op, "recvcounts", c.counts, 1);
      const size_t total = count_list(op, "recvcounts", c.counts, size, c.dtype);
      if (c.counts[rank] != c.count)
        invalid(S(op) + "recvcounts[" + std::to_string(rank) + "] is " + std::to_string(c.counts[rank]) +
                " but this rank's sendcount is " + std::to_string(c.count));
      pointer(op, "recvbuf", c.recv, total);
      no_overlap(op, c.send, c.count * es, c.recv, total * es, at(c.recv, sum_before(c.counts, rank), es));
      return {c.count ? c.send : c.recv, total ? c.recv : nullptr, c.count};
    }
    case Op::Broadcast:
      bytes(op, "count", c.count, 1, c.dtype);
      pointer(op, "buf", c.recv, c.count);
      validate::rank(op, "root", c.root, size);
      return {c.recv, nullptr, c.count};
    case Op::Gatherv: {
      validate::rank(op, "root", c.root, size);
      bytes(op, "sendcount", c.count, 1, c.dtype);
      pointer(op, "sendbuf", c.send, c.count);
      if (rank != c.root) return {c.send, nullptr, c.count};
      pointer(op, "recvcounts", c.counts, 1);
      const size_t total = count_list(op, "recvcounts", c.counts, size, c.dtype);
      if (c.counts[c.root] != c.count)
        invalid(S(op) + "recvcounts[" + std::to_string(c.root) + "] is " + std::to_string(c.counts[c.root]) +
                " but root's sendcount is " + std::to_string(c.count));
      pointer(op, "recvbuf", c.recv, total);
      no_overlap(op, c.send, c.count * es, c.recv, total * es, at(c.recv, sum_before(c.counts, c.root), es));
      return {c.send, c.recv, c.count};
    }
    case Op::Reduce: {
      reduce_op(op, c.reduce);
      validate::rank(op, "root", c.root, size);
      const size_t b = bytes(op, "count", c.count, 1, c.dtype);
      pointer(op, "sendbuf", c.send, c.count);
      if (rank != c.root) return {c.send, nullptr, c.count};
      pointer(op, "recvbuf", c.recv, c.count);
      no_overlap(op, c.send, b, c.recv, b, c.recv);
      return {c.send, c.recv, c.count};
    }
    case Op::Scatterv: {
      validate::rank(op, "root", c.root, size);
      bytes(op, "recvcount", c.count, 1, c.dtype);
      pointer(op, "recvbuf", c.recv, c.count);
      if (rank != c.root) return {c.recv, nullptr, c.count};
      pointer(op, "sendcounts", c.counts, 1);
      const size_t total = count_list(op, "sendcounts", c.counts, size, c.dtype);
      if (c.counts[c.root] != c.count)
        invalid(S(op) + "sendcounts[" + std::to_string(c.root) + "] is " + std::to_string(c.counts[c.root]) +
                " but root's recvcount is " + std::to_string(c.count));
      pointer(op, "sendbuf", c.send, total);
      const void *own = at(c.send, sum_before(c.counts, c.root), es);
      no_overlap(op, c.send, total * es, c.recv, c.count * es, c.recv == own ? c.send : nullptr);
      return {c.send, c.recv, c.count};
    }
    case Op::Alltoallv:
      return alltoallv(op, c, rank, size);
    case Op::Send:
    case Op::Recv:
    case Op::Isend:
    case Op::Irecv:
    case Op::RecvAny: {
      const bool sends = c.op == Op::Send || c.op == Op::Isend;
      const void *buf = sends ? c.send : c.recv;
      bytes(op, "count", c.count, 1, c.dtype);
      pointer(op, "buf", buf, c.count);
      if (c.op != Op::RecvAny) validate::rank(op, "peer", c.peer, size);
      tag(op, c.tag, max_tag);
      return {buf, nullptr, c.count};
    }
    case Op::Barrier:
      break;
  }
  return {};
}

}  // namespace smp::comm::validate
