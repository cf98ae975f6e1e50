#include "comm/communicator.h"

#include <algorithm>
#include <vector>

#include "comm/async_worker.h"
#include "comm/call_checker.h"
#include "comm/check.h"
#include "comm/groups.h"
#include "comm/validate.h"
#include "comm/watchdog.h"
#include "common/error.h"

namespace smp::comm {

namespace v = validate;

namespace {

// Waits under the watchdog: a request is "pending" for hang protection only
// while somebody blocks on it.
class WatchedRequest final : public Request {
 public:
  WatchedRequest(RequestPtr inner, OpInfo info) : inner_(std::move(inner)), info_(info) {}
  void wait() override {
    OpScope scope(info_);
    inner_->wait();
  }
  bool test() override { return inner_->test(); }

 private:
  RequestPtr inner_;
  OpInfo info_;
};

CallDesc desc(CollKind k, int dtype, int op, size_t count, int root) {
  return CallDesc{static_cast<int64_t>(k), dtype, op, static_cast<int64_t>(count), root};
}

}  // namespace

Communicator::Communicator(topo::Group group, std::vector<int> members, int rank,
                           CommSettings settings, std::unique_ptr<Backend> host,
                           std::unique_ptr<Backend> host_async)
    : group_(group), name_(group_label(group)), members_(std::move(members)), members_hash_(members_hash(members_)), rank_(rank),
      settings_(settings),
      host_(std::move(host)), host_async_(std::move(host_async)) {}

Communicator::~Communicator() = default;

OpInfo Communicator::op_info(const char *op, int peer, int root, int tag, size_t count) const {
  OpInfo i;
  i.op = op;
  i.group = group_;
  i.peer = peer;
  i.root = root;
  i.tag = tag;
  i.count = count;
  i.timeout = timeout();
  return i;
}

void Communicator::set_device_backends(std::unique_ptr<Backend> device,
                                       std::unique_ptr<Backend> device_async) {
  device_ = std::move(device);
  device_async_ = std::move(device_async);
}

Backend &Communicator::backend_for(const char *what, const void *a, const void *b, bool async) {
  const MemType ma = classify(a), mb = b ? classify(b) : ma;
  if (ma != mb)
    invalid(std::string(what) + ": sendbuf is " + memtype_name(ma) + " memory but recvbuf is " +
            memtype_name(mb) + " memory");
  if (ma == MemType::Cuda && device_) return async ? *device_async_ : *device_;
  if (ma != MemType::Host)
    fail(Status::Unsupported, std::string(what) + ": " + memtype_name(ma) +
                                  " memory has no backend in this build");
  return async ? *host_async_ : *host_;
}

AsyncWorker &Communicator::worker() {
  std::call_once(worker_once_, [&] { worker_ = std::make_unique<AsyncWorker>(settings_.async_thread); });
  return *worker_;
}

void Communicator::verify(Backend &call_backend, const CallDesc &mine, const size_t *counts,
                          const size_t *counts2) {
  // A group of one: nobody to compare with (gatherv's recvcounts[root] ==
  // sendcount was checked with the arguments).
  if (size() == 1) return;
  // The descriptors are host memory: a device call checks over its host twin.
  const bool device = &call_backend == device_.get() || &call_backend == device_async_.get();
  const bool async = &call_backend == host_async_.get() || &call_backend == device_async_.get();
  Backend &b = &call_backend == device_.get() ? *host_
             : &call_backend == device_async_.get() ? *host_async_ : call_backend;
  CallDesc me = mine;
  me.memory = device ? 1 : 0;
  me.members = members_hash_;
  std::vector<CallDesc> all(static_cast<size_t>(size()));
  // Blocking calls go through the world-level checker, which also catches
  // a member that named another group (call_checker.h). A non-blocking
  // call runs on this group's worker thread, which only ever runs this
  // group's calls, so its group's own allgather is enough.
  if (!async && settings_.checker)
    all = settings_.checker->exchange(group_, members_, rank_, me);
  else
    b.allgather(&me, all.data(), kCallDescWords, DType::I64, nullptr);
  const std::string msg = compare_calls(all, group_name());
  if (!msg.empty()) fail(Status::PeerFailed, msg);
  if (mine.kind == static_cast<int64_t>(CollKind::Scatterv)) return verify_scatterv(b, all, mine, counts);
  if (mine.kind == static_cast<int64_t>(CollKind::Alltoallv)) return verify_alltoallv(b, counts, counts2);
  if (mine.kind != static_cast<int64_t>(CollKind::Gatherv)) return;
  // gatherv: root compares recvcounts with what every rank sends, and
  // tells everyone the first rank that disagrees.
  const size_t *recvcounts = counts;
  int64_t bad = -1;
  if (rank_ == mine.root)
    for (int r = 0; r < size() && bad < 0; ++r)
      if (static_cast<int64_t>(recvcounts[r]) != all[static_cast<size_t>(r)].count) bad = r;
  b.broadcast(&bad, 1, DType::I64, static_cast<int>(mine.root), nullptr);
  if (bad >= 0)
    fail(Status::PeerFailed, std::string("SMP_CHECK: gatherv on ") + group_name() + ": rank " +
                                 std::to_string(bad) + " sends " +
                                 std::to_string(all[static_cast<size_t>(bad)].count) +
                                 " elements but root's recvcounts[" + std::to_string(bad) +
                                 "] differs");
}

// scatterv: root compares sendcounts with every rank's recvcount and tells
// everyone the first rank that disagrees, and root's count for it.
void Communicator::verify_scatterv(Backend &b, const std::vector<CallDesc> &all, const CallDesc &mine,
                                   const size_t *sendcounts) {
  int64_t bad[2] = {-1, 0};
  if (rank_ == mine.root)
    for (int r = 0; r < size() && bad[0] < 0; ++r)
      if (static_cast<int64_t>(sendcounts[r]) != all[static_cast<size_t>(r)].count) {
        bad[0] = r;
        bad[1] = static_cast<int64_t>(sendcounts[r]);
      }
  b.broadcast(bad, 2, DType::I64, static_cast<int>(mine.root), nullptr);
  if (bad[0] >= 0)
    fail(Status::PeerFailed, std::string("SMP_CHECK: scatterv on ") + group_name() + ": rank " +
                                 std::to_string(bad[0]) + " expects " +
                                 std::to_string(all[static_cast<size_t>(bad[0])].count) +
                                 " elements (its recvcount) but root's sendcounts[" + std::to_string(bad[0]) +
                                 "] is " + std::to_string(bad[1]));
}

// alltoallv: every rank learns what each peer sends it, compares that with
// its recvcounts, and the first disagreement (lowest receiving rank) is
// the same message on every rank.
void Communicator::verify_alltoallv(Backend &b, const size_t *sendcounts, const size_t *recvcounts) {
  const size_t n = static_cast<size_t>(size());
  std::vector<int64_t> mine(n), theirs(n);
  std::vector<size_t> ones(n, 1), displs(n);
  for (size_t p = 0; p < n; ++p) {
    mine[p] = static_cast<int64_t>(sendcounts[p]);
    displs[p] = p;
  }
  b.alltoallv(mine.data(), ones.data(), displs.data(), theirs.data(), ones.data(), displs.data(), DType::I64,
              nullptr);
  int64_t report[3] = {-1, 0, 0};  // sender, what it sends, what recvcounts says
  for (size_t p = 0; p < n && report[0] < 0; ++p)
    if (theirs[p] != static_cast<int64_t>(recvcounts[p])) {
      report[0] = static_cast<int64_t>(p);
      report[1] = theirs[p];
      report[2] = static_cast<int64_t>(recvcounts[p]);
    }
  std::vector<int64_t> reports(3 * n);
  b.allgather(report, reports.data(), 3, DType::I64, nullptr);
  for (size_t r = 0; r < n; ++r) {
    const int64_t *x = &reports[3 * r];
    if (x[0] < 0) continue;
    fail(Status::PeerFailed, std::string("SMP_CHECK: alltoallv on ") + group_name() + ": rank " +
                                 std::to_string(x[0]) + " sends " + std::to_string(x[1]) + " elements to rank " +
                                 std::to_string(r) + " but rank " + std::to_string(r) + "'s recvcounts[" +
                                 std::to_string(x[0]) + "] is " + std::to_string(x[2]));
  }
}

// Argument checks shared by each blocking collective and its non-blocking
// twin (the message names `what`, the call the user made).
void Communicator::check_allreduce(const char *what, const void *sendbuf, const void *recvbuf,
                                   size_t count, DType dtype, ReduceOp op) const {
  v::dtype(what, dtype);
  v::reduce_op(what, op);
  const size_t bytes = v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "sendbuf", sendbuf, count);
  v::pointer(what, "recvbuf", recvbuf, count);
  v::no_overlap(what, sendbuf, bytes, recvbuf, bytes, recvbuf);
}

void Communicator::check_reduce_scatter(const char *what, const void *sendbuf, const void *recvbuf,
                                        size_t recvcount, DType dtype, ReduceOp op) const {
  v::dtype(what, dtype);
  v::reduce_op(what, op);
  const size_t total = v::bytes(what, "recvcount", recvcount, static_cast<size_t>(size()), dtype);
  v::pointer(what, "sendbuf", sendbuf, recvcount);
  v::pointer(what, "recvbuf", recvbuf, recvcount);
  const size_t es = dtype_size(dtype);
  const void *in_place = sendbuf ? static_cast<const char *>(sendbuf) + rank_ * recvcount * es : nullptr;
  v::no_overlap(what, sendbuf, total, recvbuf, recvcount * es, recvbuf == in_place ? sendbuf : nullptr);
}

void Communicator::check_allgather(const char *what, const void *sendbuf, const void *recvbuf,
                                   size_t sendcount, DType dtype) const {
  v::dtype(what, dtype);
  const size_t total = v::bytes(what, "sendcount", sendcount, static_cast<size_t>(size()), dtype);
  v::pointer(what, "sendbuf", sendbuf, sendcount);
  v::pointer(what, "recvbuf", recvbuf, sendcount);
  const size_t es = dtype_size(dtype);
  const void *in_place = recvbuf ? static_cast<const char *>(recvbuf) + rank_ * sendcount * es : nullptr;
  v::no_overlap(what, sendbuf, sendcount * es, recvbuf, total, in_place);
}

void Communicator::allreduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype,
                             ReduceOp op, void *stream) {
  const char *what = "allreduce";
  check_allreduce(what, sendbuf, recvbuf, count, dtype, op);
  Backend &b = backend_for(what, sendbuf, recvbuf, false);
  OpScope scope(op_info(what, -1, -1, -1, count));
  if (settings_.check)
    verify(b, desc(CollKind::Allreduce, static_cast<int>(dtype), static_cast<int>(op), count, -1));
  b.allreduce(sendbuf, recvbuf, count, dtype, op, stream);
}

void Communicator::reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount, DType dtype,
                                  ReduceOp op, void *stream) {
  const char *what = "reduce_scatter";
  check_reduce_scatter(what, sendbuf, recvbuf, recvcount, dtype, op);
  Backend &b = backend_for(what, sendbuf, recvbuf, false);
  OpScope scope(op_info(what, -1, -1, -1, recvcount));
  if (settings_.check)
    verify(b, desc(CollKind::ReduceScatter, static_cast<int>(dtype), static_cast<int>(op), recvcount, -1));
  b.reduce_scatter(sendbuf, recvbuf, recvcount, dtype, op, stream);
}

void Communicator::allgather(const void *sendbuf, void *recvbuf, size_t sendcount, DType dtype,
                             void *stream) {
  const char *what = "allgather";
  check_allgather(what, sendbuf, recvbuf, sendcount, dtype);
  Backend &b = backend_for(what, sendbuf, recvbuf, false);
  OpScope scope(op_info(what, -1, -1, -1, sendcount));
  if (settings_.check) verify(b, desc(CollKind::Allgather, static_cast<int>(dtype), -1, sendcount, -1));
  b.allgather(sendbuf, recvbuf, sendcount, dtype, stream);
}

void Communicator::broadcast(void *buf, size_t count, DType dtype, int root, void *stream) {
  const char *what = "broadcast";
  v::dtype(what, dtype);
  v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "buf", buf, count);
  v::rank(what, "root", root, size());
  Backend &b = backend_for(what, buf, nullptr, false);
  OpScope scope(op_info(what, -1, root, -1, count));
  if (settings_.check) verify(b, desc(CollKind::Broadcast, static_cast<int>(dtype), -1, count, root));
  b.broadcast(buf, count, dtype, root, stream);
}

void Communicator::gatherv(const void *sendbuf, size_t sendcount, void *recvbuf,
                           const size_t *recvcounts, DType dtype, int root, void *stream) {
  const char *what = "gatherv";
  v::dtype(what, dtype);
  v::rank(what, "root", root, size());
  const size_t es = dtype_size(dtype);
  v::bytes(what, "sendcount", sendcount, 1, dtype);
  v::pointer(what, "sendbuf", sendbuf, sendcount);
  if (rank_ == root) {
    v::pointer(what, "recvcounts", recvcounts, 1);
    size_t total = 0;
    for (int r = 0; r < size(); ++r) {
      const std::string name = "recvcounts[" + std::to_string(r) + "]";
      v::bytes(what, name.c_str(), recvcounts[r], 1, dtype);
      if (total + recvcounts[r] < total) invalid(std::string(what) + ": the sum of recvcounts overflows");
      total += recvcounts[r];
    }
    v::bytes(what, "the sum of recvcounts", total, 1, dtype);
    if (recvcounts[root] != sendcount)
      invalid(std::string(what) + ": recvcounts[" + std::to_string(root) + "] is " +
              std::to_string(recvcounts[root]) + " but root's sendcount is " + std::to_string(sendcount));
    v::pointer(what, "recvbuf", recvbuf, total);
    size_t before = 0;
    for (int r = 0; r < root; ++r) before += recvcounts[r];
    const void *own = recvbuf ? static_cast<const char *>(recvbuf) + before * es : nullptr;
    v::no_overlap(what, sendbuf, sendcount * es, recvbuf, total * es, own);
  }
  Backend &b = backend_for(what, sendbuf, rank_ == root ? recvbuf : nullptr, false);
  OpScope scope(op_info(what, -1, root, -1, sendcount));
  if (settings_.check)
    verify(b, desc(CollKind::Gatherv, static_cast<int>(dtype), -1, sendcount, root), recvcounts);
  b.gatherv(sendbuf, sendcount, recvbuf, recvcounts, dtype, root, stream);
}

void Communicator::barrier() {
  Backend &b = *host_;
  OpScope scope(op_info("barrier", -1, -1, -1, 0));
  if (settings_.check) verify(b, desc(CollKind::Barrier, -1, -1, 0, -1));
  b.barrier();
}

void Communicator::reduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype, ReduceOp op,
                          int root, void *stream) {
  const char *what = "reduce";
  v::dtype(what, dtype);
  v::reduce_op(what, op);
  v::rank(what, "root", root, size());
  const size_t bytes = v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "sendbuf", sendbuf, count);
  if (rank_ == root) {
    v::pointer(what, "recvbuf", recvbuf, count);
    v::no_overlap(what, sendbuf, bytes, recvbuf, bytes, recvbuf);
  }
  Backend &b = backend_for(what, sendbuf, rank_ == root ? recvbuf : nullptr, false);
  OpScope scope(op_info(what, -1, root, -1, count));
  if (settings_.check)
    verify(b, desc(CollKind::Reduce, static_cast<int>(dtype), static_cast<int>(op), count, root));
  b.reduce(sendbuf, recvbuf, count, dtype, op, root, stream);
}

void Communicator::scatterv(const void *sendbuf, const size_t *sendcounts, void *recvbuf, size_t recvcount,
                            DType dtype, int root, void *stream) {
  const char *what = "scatterv";
  v::dtype(what, dtype);
  v::rank(what, "root", root, size());
  const size_t es = dtype_size(dtype);
  v::bytes(what, "recvcount", recvcount, 1, dtype);
  v::pointer(what, "recvbuf", recvbuf, recvcount);
  if (rank_ == root) {
    v::pointer(what, "sendcounts", sendcounts, 1);
    size_t total = 0;
    for (int r = 0; r < size(); ++r) {
      const std::string name = "sendcounts[" + std::to_string(r) + "]";
      v::bytes(what, name.c_str(), sendcounts[r], 1, dtype);
      if (total + sendcounts[r] < total) invalid(std::string(what) + ": the sum of sendcounts overflows");
      total += sendcounts[r];
    }
    v::bytes(what, "the sum of sendcounts", total, 1, dtype);
    if (sendcounts[root] != recvcount)
      invalid(std::string(what) + ": sendcounts[" + std::to_string(root) + "] is " +
              std::to_string(sendcounts[root]) + " but root's recvcount is " + std::to_string(recvcount));
    v::pointer(what, "sendbuf", sendbuf, total);
    size_t before = 0;
    for (int r = 0; r < root; ++r) before += sendcounts[r];
    const void *own = sendbuf ? static_cast<const char *>(sendbuf) + before * es : nullptr;
    v::no_overlap(what, sendbuf, total * es, recvbuf, recvcount * es, recvbuf == own ? sendbuf : nullptr);
  }
  Backend &b = rank_ == root ? backend_for(what, sendbuf, recvbuf, false) : backend_for(what, recvbuf, nullptr, false);
  OpScope scope(op_info(what, -1, root, -1, recvcount));
  if (settings_.check)
    verify(b, desc(CollKind::Scatterv, static_cast<int>(dtype), -1, recvcount, root), sendcounts);
  b.scatterv(sendbuf, sendcounts, recvbuf, recvcount, dtype, root, stream);
}

void Communicator::alltoallv(const void *sendbuf, const size_t *sendcounts, const size_t *sdispls,
                             void *recvbuf, const size_t *recvcounts, const size_t *rdispls, DType dtype,
                             void *stream) {
  const char *what = "alltoallv";
  v::dtype(what, dtype);
  v::pointer(what, "sendcounts", sendcounts, 1);
  v::pointer(what, "sdispls", sdispls, 1);
  v::pointer(what, "recvcounts", recvcounts, 1);
  v::pointer(what, "rdispls", rdispls, 1);
  // The extent of each side: the end of its furthest block, in elements.
  auto extent = [&](const char *counts_name, const size_t *counts, const char *displs_name,
                    const size_t *displs, size_t *sum) {
    size_t end = 0;
    *sum = 0;
    for (int r = 0; r < size(); ++r) {
      const std::string c = std::string(counts_name) + "[" + std::to_string(r) + "]";
      v::bytes(what, c.c_str(), counts[r], 1, dtype);
      if (counts[r] == 0) continue;
      if (displs[r] + counts[r] < displs[r])
        invalid(std::string(what) + ": " + displs_name + "[" + std::to_string(r) + "] + " + c + " overflows");
      end = std::max(end, displs[r] + counts[r]);
      if (*sum + counts[r] < *sum) invalid(std::string(what) + ": the sum of " + counts_name + " overflows");
      *sum += counts[r];
    }
    return end;
  };
  size_t sendtotal = 0, recvtotal = 0;
  const size_t send_end = extent("sendcounts", sendcounts, "sdispls", sdispls, &sendtotal);
  const size_t recv_end = extent("recvcounts", recvcounts, "rdispls", rdispls, &recvtotal);
  const size_t sbytes = v::bytes(what, "the extent of sdispls + sendcounts", send_end, 1, dtype);
  const size_t rbytes = v::bytes(what, "the extent of rdispls + recvcounts", recv_end, 1, dtype);
  v::bytes(what, "the sum of sendcounts", sendtotal, 1, dtype);
  v::pointer(what, "sendbuf", sendbuf, send_end);
  v::pointer(what, "recvbuf", recvbuf, recv_end);
  if (sendcounts[rank_] != recvcounts[rank_])
    invalid(std::string(what) + ": sendcounts[" + std::to_string(rank_) + "] is " +
            std::to_string(sendcounts[rank_]) + " but recvcounts[" + std::to_string(rank_) + "] is " +
            std::to_string(recvcounts[rank_]) + " (this rank's block to itself)");
  v::no_overlap(what, sendbuf, sbytes, recvbuf, rbytes, nullptr);
  Backend &b = backend_for(what, send_end ? sendbuf : recvbuf, recv_end ? recvbuf : nullptr, false);
  OpScope scope(op_info(what, -1, -1, -1, sendtotal));
  if (settings_.check)
    verify(b, desc(CollKind::Alltoallv, static_cast<int>(dtype), -1, sendtotal, -1), sendcounts, recvcounts);
  b.alltoallv(sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls, dtype, stream);
}

void Communicator::send(const void *buf, size_t count, DType dtype, int peer, int tag, void *stream) {
  const char *what = "send";
  v::dtype(what, dtype);
  v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "buf", buf, count);
  v::rank(what, "peer", peer, size());
  v::tag(what, tag, settings_.max_tag);
  Backend &b = backend_for(what, buf, nullptr, false);
  OpScope scope(op_info(what, peer, -1, tag, count));
  b.send(buf, count, dtype, peer, tag, stream);
}

void Communicator::recv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream) {
  const char *what = "recv";
  v::dtype(what, dtype);
  v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "buf", buf, count);
  v::rank(what, "peer", peer, size());
  v::tag(what, tag, settings_.max_tag);
  Backend &b = backend_for(what, buf, nullptr, false);
  OpScope scope(op_info(what, peer, -1, tag, count));
  b.recv(buf, count, dtype, peer, tag, stream);
}

int Communicator::recv_any(void *buf, size_t count, DType dtype, int tag, void *stream) {
  const char *what = "recv_any";
  v::dtype(what, dtype);
  v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "buf", buf, count);
  v::tag(what, tag, settings_.max_tag);
  Backend &b = backend_for(what, buf, nullptr, false);
  OpScope scope(op_info(what, -1, -1, tag, count));
  return b.recv_any(buf, count, dtype, tag, stream);
}

RequestPtr Communicator::isend(const void *buf, size_t count, DType dtype, int peer, int tag,
                               void *stream) {
  const char *what = "isend";
  v::dtype(what, dtype);
  v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "buf", buf, count);
  v::rank(what, "peer", peer, size());
  v::tag(what, tag, settings_.max_tag);
  Backend &b = backend_for(what, buf, nullptr, false);
  return std::make_unique<WatchedRequest>(b.isend(buf, count, dtype, peer, tag, stream),
                                          op_info("isend (wait)", peer, -1, tag, count));
}

RequestPtr Communicator::irecv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream) {
  const char *what = "irecv";
  v::dtype(what, dtype);
  v::bytes(what, "count", count, 1, dtype);
  v::pointer(what, "buf", buf, count);
  v::rank(what, "peer", peer, size());
  v::tag(what, tag, settings_.max_tag);
  Backend &b = backend_for(what, buf, nullptr, false);
  return std::make_unique<WatchedRequest>(b.irecv(buf, count, dtype, peer, tag, stream),
                                          op_info("irecv (wait)", peer, -1, tag, count));
}

// Non-blocking collectives run on the group's worker thread: they take the
// user's call that issued them (CallScope) along, for the watchdog's line.
RequestPtr Communicator::iallreduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype,
                                    ReduceOp op, void *stream) {
  const char *what = "iallreduce";
  check_allreduce(what, sendbuf, recvbuf, count, dtype, op);
  Backend &b = backend_for(what, sendbuf, recvbuf, true);
  return worker().submit([=, &b, call = CallScope::current()] {
    CallScope user([&] { return call; });
    OpScope scope(op_info(what, -1, -1, -1, count));
    if (settings_.check)
      verify(b, desc(CollKind::Iallreduce, static_cast<int>(dtype), static_cast<int>(op), count, -1));
    b.allreduce(sendbuf, recvbuf, count, dtype, op, stream);
  });
}

RequestPtr Communicator::ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                         DType dtype, ReduceOp op, void *stream) {
  const char *what = "ireduce_scatter";
  check_reduce_scatter(what, sendbuf, recvbuf, recvcount, dtype, op);
  Backend &b = backend_for(what, sendbuf, recvbuf, true);
  return worker().submit([=, &b, call = CallScope::current()] {
    CallScope user([&] { return call; });
    OpScope scope(op_info(what, -1, -1, -1, recvcount));
    if (settings_.check)
      verify(b, desc(CollKind::IreduceScatter, static_cast<int>(dtype), static_cast<int>(op), recvcount, -1));
    b.reduce_scatter(sendbuf, recvbuf, recvcount, dtype, op, stream);
  });
}

RequestPtr Communicator::iallgather(const void *sendbuf, void *recvbuf, size_t sendcount, DType dtype,
                                    void *stream) {
  const char *what = "iallgather";
  check_allgather(what, sendbuf, recvbuf, sendcount, dtype);
  Backend &b = backend_for(what, sendbuf, recvbuf, true);
  return worker().submit([=, &b, call = CallScope::current()] {
    CallScope user([&] { return call; });
    OpScope scope(op_info(what, -1, -1, -1, sendcount));
    if (settings_.check) verify(b, desc(CollKind::Iallgather, static_cast<int>(dtype), -1, sendcount, -1));
    b.allgather(sendbuf, recvbuf, sendcount, dtype, stream);
  });
}

}  // namespace smp::comm
