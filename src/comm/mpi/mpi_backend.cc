#include "comm/mpi/mpi_backend.h"

#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "comm/mpi/mpi_request.h"
#include "comm/mpi/mpi_util.h"
#include "comm/mpi/pairwise_reduce_scatter.h"
#include "comm/reduce.h"

namespace smp::comm::mpi {

namespace {

char *at(void *p, size_t elems, size_t es) { return static_cast<char *>(p) + elems * es; }
const char *at(const void *p, size_t elems, size_t es) {
  return static_cast<const char *>(p) + elems * es;
}

MPI_Comm dup_returning(MPI_Comm c) {
  MPI_Comm d = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(c, &d), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(d, MPI_ERRORS_RETURN);
  return d;
}

std::string p2p_what(const char *op, int peer, int tag) {
  return std::string(op) + " with peer " + std::to_string(peer) + " (tag " + std::to_string(tag) + ")";
}

}  // namespace

MpiBackend::MpiBackend(MPI_Comm group_comm, size_t max_chunk)
    : max_chunk_(std::max<size_t>(1, std::min<size_t>(max_chunk, INT_MAX))) {
  coll_ = dup_returning(group_comm);
  p2p_ = dup_returning(group_comm);
  MPI_Comm_rank(coll_, &rank_);
  MPI_Comm_size(coll_, &size_);
}

MpiBackend::~MpiBackend() {
  if (p2p_ != MPI_COMM_NULL) MPI_Comm_free(&p2p_);
  if (coll_ != MPI_COMM_NULL) MPI_Comm_free(&coll_);
}

void MpiBackend::allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *) {
  if (count == 0) return;
  // 8-bit integers take our own reduction too: Open MPI 4.1's AVX op component
  // saturates 8-bit sums instead of wrapping them (open-mpi/ompi#8045), and
  // smp.h promises two's-complement wrap-around.
  if (accumulates_in_float(t) || t == DType::I8 || t == DType::U8)
    return own_allreduce(send, recv, count, t, op);
  const size_t es = dtype_size(t);
  const bool in_place = send == recv;
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    check_mpi(MPI_Allreduce(in_place ? MPI_IN_PLACE : at(send, off, es), at(recv, off, es), n,
                            mpi_type(t), mpi_op(op), coll_),
              "allreduce: MPI_Allreduce");
  });
  if (op == ReduceOp::Avg) divide_in_place(recv, count, t, size_);
}

// A piece of a buffer split over the group in near-equal blocks (the first
// piece % n one element longer): counts and displacements, also as MPI's ints.
namespace {
struct Blocks {
  std::vector<size_t> counts, displs;
  std::vector<int> icounts, idispls;
  explicit Blocks(int n) : counts(n), displs(n), icounts(n), idispls(n) {}
  void split(size_t piece) {
    const size_t n = counts.size();
    size_t d = 0;
    for (size_t r = 0; r < n; ++r) {
      counts[r] = piece / n + (r < piece % n ? 1 : 0);
      displs[r] = d;
      icounts[r] = static_cast<int>(counts[r]);
      idispls[r] = static_cast<int>(d);
      d += counts[r];
    }
  }
};
}  // namespace

// Allreduce with smp's own reduction kernels (16-bit floats, which MPI cannot
// reduce, accumulate in float32, rounded once): reduce-scatter, then
// allgather the reduced blocks.
void MpiBackend::own_allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op) {
  const size_t es = dtype_size(t);
  const size_t piece_max = std::min<size_t>(max_chunk_, INT_MAX);  // displacements stay ints
  Blocks b(size_);
  for (size_t off = 0; off < count; off += piece_max) {
    const size_t piece = std::min(piece_max, count - off);
    b.split(piece);
    char *out = at(recv, off, es);
    pairwise_reduce_scatter(coll_, rank_, size_, at(send, off, es), out + b.displs[rank_] * es,
                            b.counts.data(), b.displs.data(), t, op);
    check_mpi(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out, b.icounts.data(),
                             b.idispls.data(), mpi_type(t), coll_),
              "allreduce: MPI_Allgatherv");
  }
}

void MpiBackend::reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                                void *) {
  if (recvcount == 0) return;
  std::vector<size_t> counts(size_, recvcount), displs(size_);
  for (int r = 0; r < size_; ++r) displs[r] = static_cast<size_t>(r) * recvcount;
  pairwise_reduce_scatter(coll_, rank_, size_, send, recv, counts.data(), displs.data(), t, op);
}

void MpiBackend::allgather(const void *send, void *recv, size_t sendcount, DType t, void *) {
  if (sendcount == 0) return;
  const size_t es = dtype_size(t);
  const MPI_Datatype T = mpi_type(t);
  const bool in_place = send == at(recv, static_cast<size_t>(rank_) * sendcount, es);
  if (sendcount <= max_chunk_) {
    const int n = static_cast<int>(sendcount);
    check_mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : send, n, T, recv, n, T, coll_),
              "allgather: MPI_Allgather");
    return;
  }
  // Too big for one call: gather column by column, each rank's chunk
  // landing sendcount elements apart (a resized contiguous type).
  for_chunks(sendcount, max_chunk_, [&](size_t off, int n) {
    MPI_Datatype block, strided;
    check_mpi(MPI_Type_contiguous(n, T, &block), "allgather: MPI_Type_contiguous");
    MPI_Type_create_resized(block, 0, static_cast<MPI_Aint>(sendcount * es), &strided);
    MPI_Type_commit(&strided);
    const int rc = MPI_Allgather(in_place ? MPI_IN_PLACE : at(send, off, es), n, T,
                                 at(recv, off, es), 1, strided, coll_);
    MPI_Type_free(&strided);
    MPI_Type_free(&block);
    check_mpi(rc, "allgather: MPI_Allgather");
  });
}

void MpiBackend::broadcast(void *buf, size_t count, DType t, int root, void *) {
  if (count == 0) return;
  const size_t es = dtype_size(t);
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    check_mpi(MPI_Bcast(at(buf, off, es), n, mpi_type(t), root, coll_), "broadcast: MPI_Bcast");
  });
}

// Linear, over point-to-point: counts and offsets are size_t (MPI_Gatherv's
// are int), and root checks that every rank sent what recvcounts promised.
void MpiBackend::gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts,
                         DType t, int root, void *) {
  const size_t es = dtype_size(t);
  const MPI_Datatype T = mpi_type(t);
  if (rank_ != root) {
    for_chunks(sendcount, max_chunk_, [&](size_t off, int n) {
      check_mpi(MPI_Send(at(send, off, es), n, T, root, kTagGatherv, coll_), "gatherv: MPI_Send");
    });
    return;
  }
  std::vector<MPI_Request> reqs;
  std::vector<int> expected, from;
  size_t displ = 0;
  for (int r = 0; r < size_; ++r) {
    if (r == root) {
      if (sendcount > 0 && at(recv, displ, es) != send)
        std::memmove(at(recv, displ, es), send, sendcount * es);
    } else {
      for_chunks(recvcounts[r], max_chunk_, [&](size_t off, int n) {
        reqs.emplace_back();
        expected.push_back(n);
        from.push_back(r);
        check_mpi(MPI_Irecv(at(recv, displ + off, es), n, T, r, kTagGatherv, coll_, &reqs.back()),
                  "gatherv: MPI_Irecv");
      });
    }
    displ += recvcounts[r];
  }
  std::vector<MPI_Status> st(reqs.size());
  const int rc = MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), st.data());
  if (rc == MPI_ERR_IN_STATUS) {
    for (size_t i = 0; i < st.size(); ++i)
      if (st[i].MPI_ERROR != MPI_SUCCESS)
        throw_mpi(st[i].MPI_ERROR, ("gatherv: receiving from rank " + std::to_string(from[i]) +
                                    " (more elements than recvcounts[" + std::to_string(from[i]) + "]?)").c_str());
  }
  check_mpi(rc, "gatherv: MPI_Waitall");
  for (size_t i = 0; i < st.size(); ++i) {
    int got = 0;
    MPI_Get_count(&st[i], T, &got);
    if (got != expected[i])
      fail(Status::InvalidArgument, "gatherv: rank " + std::to_string(from[i]) + " sent fewer elements than recvcounts[" +
                                         std::to_string(from[i]) + "] on root");
  }
}

void MpiBackend::reduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, int root, void *) {
  if (count == 0) return;
  // As allreduce: 16-bit floats and 8-bit integers take smp's reduction.
  if (accumulates_in_float(t) || t == DType::I8 || t == DType::U8)
    return own_reduce(send, recv, count, t, op, root);
  const size_t es = dtype_size(t);
  const bool root_here = rank_ == root;
  const bool in_place = root_here && send == recv;
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    check_mpi(MPI_Reduce(in_place ? MPI_IN_PLACE : at(send, off, es), root_here ? at(recv, off, es) : nullptr,
                         n, mpi_type(t), mpi_op(op), root, coll_),
              "reduce: MPI_Reduce");
  });
  if (root_here && op == ReduceOp::Avg) divide_in_place(recv, count, t, size_);
}

// reduce with smp's own kernels: the pairwise reduce-scatter, then root
// gathers the reduced blocks (every block lands in root's recv; the other
// ranks reduce theirs into a scratch buffer).
void MpiBackend::own_reduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, int root) {
  const size_t es = dtype_size(t);
  const size_t piece_max = std::min<size_t>(max_chunk_, INT_MAX);  // displacements stay ints
  Blocks b(size_);
  std::vector<char> scratch;
  for (size_t off = 0; off < count; off += piece_max) {
    const size_t piece = std::min(piece_max, count - off);
    b.split(piece);
    if (rank_ == root) {
      char *out = at(recv, off, es);
      pairwise_reduce_scatter(coll_, rank_, size_, at(send, off, es), out + b.displs[rank_] * es,
                              b.counts.data(), b.displs.data(), t, op);
      check_mpi(MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out, b.icounts.data(),
                            b.idispls.data(), mpi_type(t), root, coll_),
                "reduce: MPI_Gatherv");
    } else {
      scratch.resize(std::max<size_t>(1, b.counts[rank_] * es));
      pairwise_reduce_scatter(coll_, rank_, size_, at(send, off, es), scratch.data(),
                              b.counts.data(), b.displs.data(), t, op);
      check_mpi(MPI_Gatherv(scratch.data(), b.icounts[rank_], mpi_type(t), nullptr, nullptr, nullptr,
                            mpi_type(t), root, coll_),
                "reduce: MPI_Gatherv");
    }
  }
}

// The mirror of gatherv: root posts every rank's chunks at once.
void MpiBackend::scatterv(const void *send, const size_t *sendcounts, void *recv, size_t recvcount, DType t,
                          int root, void *) {
  const size_t es = dtype_size(t);
  const MPI_Datatype T = mpi_type(t);
  if (rank_ != root) {
    for_chunks(recvcount, max_chunk_, [&](size_t off, int n) {
      MPI_Status st;
      check_mpi(MPI_Recv(at(recv, off, es), n, T, root, kTagScatterv, coll_, &st),
                "scatterv: MPI_Recv (root's sendcounts for this rank larger than recvcount?)");
      int got = 0;
      MPI_Get_count(&st, T, &got);
      if (got != n)
        fail(Status::InvalidArgument, "scatterv: root sent fewer elements than recvcount " +
                                          std::to_string(recvcount));
    });
    return;
  }
  std::vector<MPI_Request> reqs;
  size_t displ = 0;
  for (int r = 0; r < size_; ++r) {
    if (r == root) {
      if (recvcount > 0 && at(recv, 0, es) != at(send, displ, es))
        std::memmove(recv, at(send, displ, es), recvcount * es);
    } else {
      for_chunks(sendcounts[r], max_chunk_, [&](size_t off, int n) {
        reqs.emplace_back();
        check_mpi(MPI_Isend(at(send, displ + off, es), n, T, r, kTagScatterv, coll_, &reqs.back()),
                  "scatterv: MPI_Isend");
      });
    }
    displ += sendcounts[r];
  }
  check_mpi(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE),
            "scatterv: MPI_Waitall");
}

// Every receive posted, then every send; this rank's own block is a copy.
void MpiBackend::alltoallv(const void *send, const size_t *sendcounts, const size_t *sdispls, void *recv,
                           const size_t *recvcounts, const size_t *rdispls, DType t, void *) {
  const size_t es = dtype_size(t);
  const MPI_Datatype T = mpi_type(t);
  std::vector<MPI_Request> reqs;
  std::vector<int> expected, from;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    for_chunks(recvcounts[r], max_chunk_, [&](size_t off, int n) {
      reqs.emplace_back();
      expected.push_back(n);
      from.push_back(r);
      check_mpi(MPI_Irecv(at(recv, rdispls[r] + off, es), n, T, r, kTagAlltoallv, coll_, &reqs.back()),
                "alltoallv: MPI_Irecv");
    });
  }
  const size_t nrecv = reqs.size();
  for (int k = 1; k < size_; ++k) {  // rank+1 first: spreads the load
    const int r = (rank_ + k) % size_;
    for_chunks(sendcounts[r], max_chunk_, [&](size_t off, int n) {
      reqs.emplace_back();
      check_mpi(MPI_Isend(at(send, sdispls[r] + off, es), n, T, r, kTagAlltoallv, coll_, &reqs.back()),
                "alltoallv: MPI_Isend");
    });
  }
  if (recvcounts[rank_] > 0) std::memcpy(at(recv, rdispls[rank_], es), at(send, sdispls[rank_], es),
                                         std::min(recvcounts[rank_], sendcounts[rank_]) * es);
  std::vector<MPI_Status> st(reqs.size());
  const int rc = MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), st.data());
  if (rc == MPI_ERR_IN_STATUS) {
    for (size_t i = 0; i < nrecv; ++i)
      if (st[i].MPI_ERROR != MPI_SUCCESS)
        throw_mpi(st[i].MPI_ERROR, ("alltoallv: receiving from rank " + std::to_string(from[i]) +
                                    " (more elements than recvcounts[" + std::to_string(from[i]) + "]?)").c_str());
  }
  check_mpi(rc, "alltoallv: MPI_Waitall");
  if (sendcounts[rank_] != recvcounts[rank_])
    fail(Status::InvalidArgument, "alltoallv: sendcounts[" + std::to_string(rank_) + "] is " +
                                      std::to_string(sendcounts[rank_]) + " but recvcounts[" +
                                      std::to_string(rank_) + "] is " + std::to_string(recvcounts[rank_]));
  for (size_t i = 0; i < nrecv; ++i) {
    int got = 0;
    MPI_Get_count(&st[i], T, &got);
    if (got != expected[i])
      fail(Status::InvalidArgument, "alltoallv: rank " + std::to_string(from[i]) +
                                        " sent fewer elements than recvcounts[" + std::to_string(from[i]) + "]");
  }
}

// Every rank knows every count, so all take the same path: one
// MPI_Allgatherv while the whole result fits one chunk (its int counts and
// displacements), else each rank's block is broadcast from it in chunks
// (size_t counts and offsets; only the > max_chunk case pays for that).
void MpiBackend::allgatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t,
                            void *) {
  const size_t es = dtype_size(t);
  const MPI_Datatype T = mpi_type(t);
  std::vector<size_t> displs(static_cast<size_t>(size_));
  size_t total = 0;
  for (int r = 0; r < size_; ++r) {
    displs[r] = total;
    total += recvcounts[r];
  }
  if (total == 0) return;
  void *own = at(recv, displs[rank_], es);
  if (total <= max_chunk_) {
    std::vector<int> icounts(static_cast<size_t>(size_)), idispls(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      icounts[r] = static_cast<int>(recvcounts[r]);
      idispls[r] = static_cast<int>(displs[r]);
    }
    check_mpi(MPI_Allgatherv(own == send ? MPI_IN_PLACE : send, static_cast<int>(sendcount), T, recv,
                             icounts.data(), idispls.data(), T, coll_),
              "allgatherv: MPI_Allgatherv");
    return;
  }
  if (sendcount > 0 && own != send) std::memmove(own, send, sendcount * es);
  for (int r = 0; r < size_; ++r)
    for_chunks(recvcounts[r], max_chunk_, [&](size_t off, int n) {
      check_mpi(MPI_Bcast(at(recv, displs[r] + off, es), n, T, r, coll_), "allgatherv: MPI_Bcast");
    });
}

void MpiBackend::barrier() { check_mpi(MPI_Barrier(coll_), "barrier: MPI_Barrier"); }

void MpiBackend::send(const void *buf, size_t count, DType t, int peer, int tag, void *) {
  const size_t es = dtype_size(t);
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    check_mpi(MPI_Send(at(buf, off, es), n, mpi_type(t), peer, tag, p2p_),
              p2p_what("send", peer, tag).c_str());
  });
}

void MpiBackend::recv(void *buf, size_t count, DType t, int peer, int tag, void *) {
  const size_t es = dtype_size(t);
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    MPI_Status st;
    check_mpi(MPI_Recv(at(buf, off, es), n, mpi_type(t), peer, tag, p2p_, &st),
              (p2p_what("recv", peer, tag) + " (message longer than count?)").c_str());
    int got = 0;
    MPI_Get_count(&st, mpi_type(t), &got);
    if (got != n)
      fail(Status::InvalidArgument, p2p_what("recv", peer, tag) + ": the message is shorter than count (" +
                                         std::to_string(got) + " elements arrived where " +
                                         std::to_string(n) + " were expected)");
  });
}

RequestPtr MpiBackend::isend(const void *buf, size_t count, DType t, int peer, int tag, void *) {
  const size_t es = dtype_size(t);
  std::vector<MPI_Request> reqs;
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    reqs.emplace_back();
    check_mpi(MPI_Isend(at(buf, off, es), n, mpi_type(t), peer, tag, p2p_, &reqs.back()),
              p2p_what("isend", peer, tag).c_str());
  });
  return std::make_unique<MpiRequest>(std::move(reqs), std::vector<int>{}, mpi_type(t),
                                      p2p_what("isend", peer, tag));
}

RequestPtr MpiBackend::irecv(void *buf, size_t count, DType t, int peer, int tag, void *) {
  const size_t es = dtype_size(t);
  std::vector<MPI_Request> reqs;
  std::vector<int> expected;
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    reqs.emplace_back();
    expected.push_back(n);
    check_mpi(MPI_Irecv(at(buf, off, es), n, mpi_type(t), peer, tag, p2p_, &reqs.back()),
              p2p_what("irecv", peer, tag).c_str());
  });
  return std::make_unique<MpiRequest>(std::move(reqs), std::move(expected), mpi_type(t),
                                      p2p_what("irecv", peer, tag));
}

// The first chunk comes from any source; the rest of the message, chunk by
// chunk, from that one (same pair and tag: in order).
int MpiBackend::recv_any(void *buf, size_t count, DType t, int tag, void *) {
  const size_t es = dtype_size(t);
  int source = MPI_ANY_SOURCE;
  for_chunks(count, max_chunk_, [&](size_t off, int n) {
    MPI_Status st;
    const std::string what = source == MPI_ANY_SOURCE ? "recv_any from any rank (tag " + std::to_string(tag) + ")"
                                                      : p2p_what("recv_any", source, tag);
    check_mpi(MPI_Recv(at(buf, off, es), n, mpi_type(t), source, tag, p2p_, &st),
              (what + " (message longer than count?)").c_str());
    source = st.MPI_SOURCE;
    int got = 0;
    MPI_Get_count(&st, mpi_type(t), &got);
    if (got != n)
      fail(Status::InvalidArgument, p2p_what("recv_any", source, tag) +
                                        ": the message is shorter than count (" + std::to_string(got) +
                                        " elements arrived where " + std::to_string(n) + " were expected)");
  });
  return source;
}

}  // namespace smp::comm::mpi
