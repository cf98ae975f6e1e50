#include "comm/communicator.h"

#include <vector>

#include "comm/async_worker.h"
#include "comm/call.h"
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

}  // namespace

Communicator::Communicator(topo::Group group, std::vector<int> members, int rank,
                           CommSettings settings, std::unique_ptr<Backend> host,
                           std::unique_ptr<Backend> host_async)
    : group_(group), name_(group_label(group)), members_(std::move(members)), members_hash_(members_hash(members_)), rank_(rank),
      settings_(settings),
      host_(std::move(host)), host_async_(std::move(host_async)) {}

Communicator::~Communicator() = default;

void Communicator::set_device_backends(std::unique_ptr<Backend> device,
                                       std::unique_ptr<Backend> device_async) {
  device_ = std::move(device);
  device_async_ = std::move(device_async);
}

OpInfo Communicator::op_info(const char *op, const Call &c, size_t count) const {
  OpInfo i;
  i.op = op;
  i.group = group_;
  i.peer = c.peer;
  i.root = c.root;
  i.tag = c.tag;
  i.count = count;
  i.timeout = timeout();
  return i;
}

// One lookup per buffer that decides (the second only when it is another
// buffer), once per call: everything after this point goes by `m`.
MemType Communicator::memtype(const char *what, const CallExtent &x) const {
  const MemType ma = classify(x.a);
  const MemType mb = x.b && x.b != x.a ? classify(x.b) : ma;
  if (ma != mb)
    invalid(std::string(what) + ": sendbuf is " + memtype_name(ma) + " memory but recvbuf is " +
            memtype_name(mb) + " memory");
  return ma;
}

Backend &Communicator::backend(const char *what, MemType m, bool async) {
  if (m == MemType::Cuda && device_) return async ? *device_async_ : *device_;
  if (m != MemType::Host)
    fail(Status::Unsupported, std::string(what) + ": " + memtype_name(m) +
                                  " memory has no backend in this build");
  return async ? *host_async_ : *host_;
}

AsyncWorker &Communicator::worker() {
  std::call_once(worker_once_, [&] { worker_ = std::make_unique<AsyncWorker>(settings_.async_thread); });
  return *worker_;
}

namespace {

// The backend call an operation makes; isend / irecv return their request.
RequestPtr perform(Backend &b, const Call &c, int *source) {
  switch (c.op) {
    case Op::Allreduce:
    case Op::Iallreduce: b.allreduce(c.send, c.recv, c.count, c.dtype, c.reduce, c.stream); break;
    case Op::ReduceScatter:
    case Op::IreduceScatter: b.reduce_scatter(c.send, c.recv, c.count, c.dtype, c.reduce, c.stream); break;
    case Op::Allgather:
    case Op::Iallgather: b.allgather(c.send, c.recv, c.count, c.dtype, c.stream); break;
    case Op::Allgatherv: b.allgatherv(c.send, c.count, c.recv, c.counts, c.dtype, c.stream); break;
    case Op::Broadcast: b.broadcast(c.recv, c.count, c.dtype, c.root, c.stream); break;
    case Op::Gatherv: b.gatherv(c.send, c.count, c.recv, c.counts, c.dtype, c.root, c.stream); break;
    case Op::Barrier: b.barrier(); break;
    case Op::Reduce: b.reduce(c.send, c.recv, c.count, c.dtype, c.reduce, c.root, c.stream); break;
    case Op::Scatterv: b.scatterv(c.send, c.counts, c.recv, c.count, c.dtype, c.root, c.stream); break;
    case Op::Alltoallv:
      b.alltoallv(c.send, c.counts, c.displs, c.recv, c.counts2, c.displs2, c.dtype, c.stream);
      break;
    case Op::Send: b.send(c.send, c.count, c.dtype, c.peer, c.tag, c.stream); break;
    case Op::Recv: b.recv(c.recv, c.count, c.dtype, c.peer, c.tag, c.stream); break;
    case Op::RecvAny: *source = b.recv_any(c.recv, c.count, c.dtype, c.tag, c.stream); break;
    case Op::Isend: return b.isend(c.send, c.count, c.dtype, c.peer, c.tag, c.stream);
    case Op::Irecv: return b.irecv(c.recv, c.count, c.dtype, c.peer, c.tag, c.stream);
  }
  return nullptr;
}

}  // namespace

RequestPtr Communicator::run(const Call &c, int *source) {
  const CallKind &k = call_kind(c.op);
  const CallExtent x = v::call(c, rank_, size(), settings_.max_tag);
  // barrier moves no buffer: the host backend's.
  const MemType m = c.op == Op::Barrier ? MemType::Host : memtype(k.name, x);
  Backend &b = backend(k.name, m, k.on_worker);
  // Non-blocking point-to-point: the watchdog watches whoever waits on it.
  if (k.wait_name)
    return std::make_unique<WatchedRequest>(perform(b, c, nullptr), op_info(k.wait_name, c, x.count));
  if (!k.on_worker) {
    execute(b, m, c, x.count, source);
    return nullptr;
  }
  // Non-blocking collectives take the user's call that issued them
  // (CallScope) along to the worker thread, for the watchdog's line.
  return worker().submit([this, &b, m, c, count = x.count, call = CallScope::current()] {
    CallScope user([&] { return call; });
    execute(b, m, c, count, nullptr);
  });
}

void Communicator::execute(Backend &b, MemType m, const Call &c, size_t count, int *source) {
  OpScope scope(op_info(c.name(), c, count));
  if (settings_.check && call_kind(c.op).coll != CollKind{}) verify(m, c, count);
  perform(b, c, source);
}

void Communicator::verify(MemType m, const Call &c, size_t count) {
  // A group of one: nobody to compare with (the v-collectives' own count
  // was checked with the arguments).
  if (size() == 1) return;
  const CallKind &k = call_kind(c.op);
  // The descriptors are host memory: a device call checks over its host twin.
  Backend &b = k.on_worker ? *host_async_ : *host_;
  CallDesc me{static_cast<int64_t>(k.coll), c.op == Op::Barrier ? -1 : static_cast<int64_t>(c.dtype),
              k.reduces ? static_cast<int64_t>(c.reduce) : -1, static_cast<int64_t>(count), c.root};
  me.memory = m == MemType::Cuda ? 1 : 0;
  me.members = members_hash_;
  std::vector<CallDesc> all(static_cast<size_t>(size()));
  // Blocking calls go through the world-level checker, which also catches
  // a member that named another group (call_checker.h). A non-blocking
  // call runs on this group's worker thread, which only ever runs this
  // group's calls, so its group's own allgather is enough.
  if (!k.on_worker && settings_.checker)
    all = settings_.checker->exchange(group_, members_, rank_, me);
  else
    b.allgather(&me, all.data(), kCallDescWords, DType::I64, nullptr);
  const std::string msg = compare_calls(all, group_name());
  if (!msg.empty()) fail(Status::PeerFailed, msg);
  switch (c.op) {
    case Op::Gatherv: return verify_gatherv(b, all, c);
    case Op::Scatterv: return verify_scatterv(b, all, c);
    case Op::Alltoallv: return verify_alltoallv(b, c.counts, c.counts2);
    case Op::Allgatherv: return verify_allgatherv(b, all, c.counts);
    default: return;
  }
}

// gatherv: root compares recvcounts with what every rank sends, and tells
// everyone the first rank that disagrees.
void Communicator::verify_gatherv(Backend &b, const std::vector<CallDesc> &all, const Call &c) {
  int64_t bad = -1;
  if (rank_ == c.root)
    for (int r = 0; r < size() && bad < 0; ++r)
      if (static_cast<int64_t>(c.counts[r]) != all[static_cast<size_t>(r)].count) bad = r;
  b.broadcast(&bad, 1, DType::I64, c.root, nullptr);
  if (bad >= 0)
    fail(Status::PeerFailed, std::string("SMP_CHECK: gatherv on ") + group_name() + ": rank " +
                                 std::to_string(bad) + " sends " +
                                 std::to_string(all[static_cast<size_t>(bad)].count) +
                                 " elements but root's recvcounts[" + std::to_string(bad) +
                                 "] differs");
}

// scatterv: root compares sendcounts with every rank's recvcount and tells
// everyone the first rank that disagrees, and root's count for it.
void Communicator::verify_scatterv(Backend &b, const std::vector<CallDesc> &all, const Call &c) {
  const size_t *sendcounts = c.counts;
  int64_t bad[2] = {-1, 0};
  if (rank_ == c.root)
    for (int r = 0; r < size() && bad[0] < 0; ++r)
      if (static_cast<int64_t>(sendcounts[r]) != all[static_cast<size_t>(r)].count) {
        bad[0] = r;
        bad[1] = static_cast<int64_t>(sendcounts[r]);
      }
  b.broadcast(bad, 2, DType::I64, c.root, nullptr);
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

// allgatherv: every rank holds every count, so each compares its
// recvcounts with what every rank sends; the first disagreement (lowest
// rank holding one) is the same message on every rank.
void Communicator::verify_allgatherv(Backend &b, const std::vector<CallDesc> &all, const size_t *recvcounts) {
  const size_t n = static_cast<size_t>(size());
  int64_t report[3] = {-1, 0, 0};  // sender, what it sends, what this rank's recvcounts says
  for (size_t r = 0; r < n && report[0] < 0; ++r)
    if (static_cast<int64_t>(recvcounts[r]) != all[r].count) {
      report[0] = static_cast<int64_t>(r);
      report[1] = all[r].count;
      report[2] = static_cast<int64_t>(recvcounts[r]);
    }
  std::vector<int64_t> reports(3 * n);
  b.allgather(report, reports.data(), 3, DType::I64, nullptr);
  for (size_t r = 0; r < n; ++r) {
    const int64_t *x = &reports[3 * r];
    if (x[0] < 0) continue;
    fail(Status::PeerFailed, std::string("SMP_CHECK: allgatherv on ") + group_name() + ": rank " +
                                 std::to_string(x[0]) + " sends " + std::to_string(x[1]) + " elements but rank " +
                                 std::to_string(r) + "'s recvcounts[" + std::to_string(x[0]) + "] is " +
                                 std::to_string(x[2]));
  }
}

// Each operation describes itself (comm/call.h) and takes the one path.

void Communicator::allreduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype,
                             ReduceOp op, void *stream) {
  Call c{Op::Allreduce};
  c.send = sendbuf, c.recv = recvbuf, c.count = count, c.dtype = dtype, c.reduce = op, c.stream = stream;
  run(c);
}

void Communicator::reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount, DType dtype,
                                  ReduceOp op, void *stream) {
  Call c{Op::ReduceScatter};
  c.send = sendbuf, c.recv = recvbuf, c.count = recvcount, c.dtype = dtype, c.reduce = op, c.stream = stream;
  run(c);
}

void Communicator::allgather(const void *sendbuf, void *recvbuf, size_t sendcount, DType dtype,
                             void *stream) {
  Call c{Op::Allgather};
  c.send = sendbuf, c.recv = recvbuf, c.count = sendcount, c.dtype = dtype, c.stream = stream;
  run(c);
}

void Communicator::allgatherv(const void *sendbuf, size_t sendcount, void *recvbuf, const size_t *recvcounts,
                              DType dtype, void *stream) {
  Call c{Op::Allgatherv};
  c.send = sendbuf, c.count = sendcount, c.recv = recvbuf, c.counts = recvcounts, c.dtype = dtype;
  c.stream = stream;
  run(c);
}

void Communicator::broadcast(void *buf, size_t count, DType dtype, int root, void *stream) {
  Call c{Op::Broadcast};
  c.recv = buf, c.count = count, c.dtype = dtype, c.root = root, c.stream = stream;
  run(c);
}

void Communicator::gatherv(const void *sendbuf, size_t sendcount, void *recvbuf,
                           const size_t *recvcounts, DType dtype, int root, void *stream) {
  Call c{Op::Gatherv};
  c.send = sendbuf, c.count = sendcount, c.recv = recvbuf, c.counts = recvcounts, c.dtype = dtype;
  c.root = root, c.stream = stream;
  run(c);
}

void Communicator::barrier() { run(Call{Op::Barrier}); }

void Communicator::reduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype, ReduceOp op,
                          int root, void *stream) {
  Call c{Op::Reduce};
  c.send = sendbuf, c.recv = recvbuf, c.count = count, c.dtype = dtype, c.reduce = op, c.root = root;
  c.stream = stream;
  run(c);
}

void Communicator::scatterv(const void *sendbuf, const size_t *sendcounts, void *recvbuf, size_t recvcount,
                            DType dtype, int root, void *stream) {
  Call c{Op::Scatterv};
  c.send = sendbuf, c.counts = sendcounts, c.recv = recvbuf, c.count = recvcount, c.dtype = dtype;
  c.root = root, c.stream = stream;
  run(c);
}

void Communicator::alltoallv(const void *sendbuf, const size_t *sendcounts, const size_t *sdispls,
                             void *recvbuf, const size_t *recvcounts, const size_t *rdispls, DType dtype,
                             void *stream) {
  Call c{Op::Alltoallv};
  c.send = sendbuf, c.counts = sendcounts, c.displs = sdispls;
  c.recv = recvbuf, c.counts2 = recvcounts, c.displs2 = rdispls, c.dtype = dtype, c.stream = stream;
  run(c);
}

void Communicator::send(const void *buf, size_t count, DType dtype, int peer, int tag, void *stream) {
  Call c{Op::Send};
  c.send = buf, c.count = count, c.dtype = dtype, c.peer = peer, c.tag = tag, c.stream = stream;
  run(c);
}

void Communicator::recv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream) {
  Call c{Op::Recv};
  c.recv = buf, c.count = count, c.dtype = dtype, c.peer = peer, c.tag = tag, c.stream = stream;
  run(c);
}

int Communicator::recv_any(void *buf, size_t count, DType dtype, int tag, void *stream) {
  Call c{Op::RecvAny};
  c.recv = buf, c.count = count, c.dtype = dtype, c.tag = tag, c.stream = stream;
  int source = -1;
  run(c, &source);
  return source;
}

RequestPtr Communicator::isend(const void *buf, size_t count, DType dtype, int peer, int tag,
                               void *stream) {
  Call c{Op::Isend};
  c.send = buf, c.count = count, c.dtype = dtype, c.peer = peer, c.tag = tag, c.stream = stream;
  return run(c);
}

RequestPtr Communicator::irecv(void *buf, size_t count, DType dtype, int peer, int tag, void *stream) {
  Call c{Op::Irecv};
  c.recv = buf, c.count = count, c.dtype = dtype, c.peer = peer, c.tag = tag, c.stream = stream;
  return run(c);
}

RequestPtr Communicator::iallreduce(const void *sendbuf, void *recvbuf, size_t count, DType dtype,
                                    ReduceOp op, void *stream) {
  Call c{Op::Iallreduce};
  c.send = sendbuf, c.recv = recvbuf, c.count = count, c.dtype = dtype, c.reduce = op, c.stream = stream;
  return run(c);
}

RequestPtr Communicator::ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                         DType dtype, ReduceOp op, void *stream) {
  Call c{Op::IreduceScatter};
  c.send = sendbuf, c.recv = recvbuf, c.count = recvcount, c.dtype = dtype, c.reduce = op, c.stream = stream;
  return run(c);
}

RequestPtr Communicator::iallgather(const void *sendbuf, void *recvbuf, size_t sendcount, DType dtype,
                                    void *stream) {
  Call c{Op::Iallgather};
  c.send = sendbuf, c.recv = recvbuf, c.count = sendcount, c.dtype = dtype, c.stream = stream;
  return run(c);
}

}  // namespace smp::comm
