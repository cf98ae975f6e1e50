#include "comm/staged/staged_backend.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/staged/pipeline.h"
#include "common/error.h"

namespace smp::comm::staged {

namespace {

using Ticket = CopyQueue::Ticket;

char *at(void *p, size_t bytes) { return static_cast<char *>(p) + bytes; }
const char *at(const void *p, size_t bytes) { return static_cast<const char *>(p) + bytes; }

// An irecv into a staging buffer, copied to the device once it arrives; an
// isend keeps its staged copy alive until the send completes.
class StagedRequest final : public Request {
 public:
  StagedRequest(StagingPool::Buffer buf, CopyEngine *engine, void *device, size_t bytes, void *stream)
      : buf_(std::move(buf)), engine_(engine), device_(device), bytes_(bytes), stream_(stream) {}
  void attach(RequestPtr inner) { inner_ = std::move(inner); }
  ~StagedRequest() override {
    try {
      wait();
    } catch (...) {  // destruction drops errors (request.h)
    }
  }
  void wait() override {
    if (inner_) inner_->wait();
    deliver();
  }
  bool test() override {
    if (inner_ && !inner_->test()) return false;
    deliver();
    return true;
  }

 private:
  void deliver() {
    if (delivered_ || device_ == nullptr) return;
    delivered_ = true;
    auto q = engine_->queue(stream_);
    q->wait(q->to_device(device_, buf_.data(), bytes_));
  }

  StagingPool::Buffer buf_;  // declared before inner_: outlives the MPI request
  RequestPtr inner_;         // the host backend's message
  CopyEngine *engine_;
  void *device_;  // receive: where the message goes; send: nullptr
  size_t bytes_;
  void *stream_;
  bool delivered_ = false;
};

}  // namespace

StagedBackend::StagedBackend(std::unique_ptr<Backend> host, int rank, int size,
                             std::shared_ptr<CopyEngine> engine, size_t chunk_bytes, Backend *p2p_host,
                             size_t device_reduce_min_bytes)
    : host_(std::move(host)), p2p_(p2p_host ? p2p_host : host_.get()), rank_(rank), size_(size),
      engine_(std::move(engine)),
      chunk_bytes_(chunk_bytes == kAutoChunk ? kAutoChunk : std::max<size_t>(chunk_bytes, 8)),
      device_reduce_min_bytes_(device_reduce_min_bytes), pool_(*engine_) {}

StagedBackend::~StagedBackend() = default;

size_t StagedBackend::chunk_elems(DType t, size_t count) const {
  const size_t es = dtype_size(t);
  size_t bytes = chunk_bytes_;
  if (bytes == kAutoChunk) {  // a quarter of the call in whole 4 KiB pages, within the bounds
    const size_t quarter = (count * es + kPipelineChunks - 1) / kPipelineChunks;
    bytes = std::clamp((quarter + 4095) / 4096 * 4096, kMinAutoChunkBytes, kDefaultChunkBytes);
  }
  return std::max<size_t>(1, bytes / es);
}

namespace {

// What every chunked operation shares: `count` elements of es bytes cut
// into chunks of C elements (chunk k: elements [k*C, k*C + len(k))), two
// staging slots of slot_elems elements each taken from the pool for the
// operation's duration, and the copy queue on the caller's stream. Each
// operation then only says what its chunk copies in, exchanges and copies
// out (run_pipeline, pipeline.h).
class Staging {
 public:
  Staging(StagingPool &pool, CopyEngine &engine, void *stream, size_t count, size_t es, size_t C,
          size_t slot_elems)
      : count_(count), es_(es), C_(C), slot_bytes_(slot_elems * es),
        buf_(pool.take(2 * slot_bytes_)), q_(engine.queue(stream)) {}

  CopyQueue &q() { return *q_; }
  char *slot(int s) const { return buf_.data() + static_cast<size_t>(s) * slot_bytes_; }
  size_t chunks() const { return (count_ + C_ - 1) / C_; }
  size_t len(size_t k) const { return std::min(C_, count_ - k * C_); }  // elements of chunk k
  size_t bytes(size_t k) const { return len(k) * es_; }
  size_t offset(size_t k) const { return k * C_ * es_; }  // chunk k's first byte in a count-array

  // The pipeline over `nchunks` chunks (chunks() unless a message must go
  // out also for count 0).
  template <class In, class Transfer, class Out>
  void run(size_t nchunks, In &&in, Transfer &&transfer, Out &&out) {
    run_pipeline(*q_, nchunks, std::forward<In>(in), std::forward<Transfer>(transfer),
                 std::forward<Out>(out));
  }

 private:
  size_t count_, es_, C_, slot_bytes_;
  StagingPool::Buffer buf_;
  std::unique_ptr<CopyQueue> q_;
};

Ticket nothing(size_t, int) { return 0; }

}  // namespace

void StagedBackend::allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op,
                              void *stream) {
  if (count == 0) return;
  const size_t C = chunk_elems(t, count);
  Staging st(pool_, *engine_, stream, count, dtype_size(t), C, C);
  st.run(
      st.chunks(),
      [&](size_t k, int s) { return st.q().to_host(st.slot(s), at(send, st.offset(k)), st.bytes(k)); },
      [&](size_t k, int s) { host_->allreduce(st.slot(s), st.slot(s), st.len(k), t, op, nullptr); },
      [&](size_t k, int s) { return st.q().to_device(at(recv, st.offset(k)), st.slot(s), st.bytes(k)); });
}

// The device reduces; the host only exchanges. Chunk k takes elements
// [k*C, k*C + n) of every block: the peers' pieces are copied into the
// slot's front (at their rank's position), sent each to its rank, and the
// pieces of this rank's block arrive in the slot's tail; then one kernel
// combines this rank's own piece (still on the device) with them, reading
// the staging memory directly, in the host reduce-scatter's order (own,
// rank-1, rank-2, ...: comm/mpi/pairwise_reduce_scatter), so the bytes
// equal the host path's. (S-1)/S of the input crosses to the host and
// nothing is copied back, against all of it and the output back when the
// host reduces, and no CPU reduction. Blocks below device_reduce_min_bytes_
// (a kernel per chunk would cost more than it saves: staged_backend.h) and
// groups larger than one reduction takes reduce on the host.
void StagedBackend::reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                                   void *stream) {
  if (recvcount == 0) return;
  const size_t es = dtype_size(t), S = static_cast<size_t>(size_), me = static_cast<size_t>(rank_);
  if (size_ > kMaxReduceInputs || (S > 1 && recvcount * es < device_reduce_min_bytes_))
    return reduce_scatter_on_host(send, recv, recvcount, t, op, stream);
  // A chunk holds 2 x S pieces per slot: past 4 ranks the pieces shrink so
  // that the staging memory stays at 16 chunk sizes (two slots).
  const size_t base = chunk_elems(t, recvcount);
  const size_t C = std::max<size_t>(1, std::min(base, 4 * base / S));
  Staging st(pool_, *engine_, stream, recvcount, es, C, 2 * S * C);
  auto piece = [&](int s, size_t b) { return st.slot(s) + b * C * es; };          // to rank b
  auto arrived = [&](int s, size_t b) { return st.slot(s) + (S + b) * C * es; };  // from rank b
  std::vector<const void *> ins(S);
  std::vector<RequestPtr> reqs;
  st.run(
      st.chunks(),
      [&](size_t k, int s) {
        Ticket last = 0;
        for (size_t b = 0; b < S; ++b)
          if (b != me)
            last = st.q().to_host(piece(s, b), at(send, b * recvcount * es + st.offset(k)), st.bytes(k));
        return last;
      },
      [&](size_t k, int s) {
        reqs.clear();
        for (size_t j = 1; j < S; ++j) {  // the same order on every rank: rank+j, rank-j
          const size_t to = (me + j) % S, from = (me + S - j) % S;
          reqs.push_back(
              host_->irecv(arrived(s, from), st.len(k), t, static_cast<int>(from), kExchangeTag, nullptr));
          reqs.push_back(host_->isend(piece(s, to), st.len(k), t, static_cast<int>(to), kExchangeTag, nullptr));
        }
        for (auto &r : reqs) r->wait();
      },
      [&](size_t k, int s) {
        ins[0] = at(send, me * recvcount * es + st.offset(k));
        for (size_t j = 1; j < S; ++j) ins[j] = arrived(s, (me + S - j) % S);
        return st.q().reduce(at(recv, st.offset(k)), ins.data(), size_, st.len(k), t, op, size_);
      });
}

// Groups of more than kMaxReduceInputs: chunk k's pieces of every block
// gathered into the slot's front, reduced on the host into its tail,
// copied to recv.
void StagedBackend::reduce_scatter_on_host(const void *send, void *recv, size_t recvcount, DType t,
                                           ReduceOp op, void *stream) {
  const size_t es = dtype_size(t), C = chunk_elems(t, recvcount), S = static_cast<size_t>(size_);
  Staging st(pool_, *engine_, stream, recvcount, es, C, (S + 1) * C);
  st.run(
      st.chunks(),
      [&](size_t k, int s) {
        Ticket last = 0;
        for (size_t b = 0; b < S; ++b)
          last = st.q().to_host(st.slot(s) + b * st.bytes(k), at(send, b * recvcount * es + st.offset(k)),
                                st.bytes(k));
        return last;
      },
      [&](size_t k, int s) {
        host_->reduce_scatter(st.slot(s), st.slot(s) + S * C * es, st.len(k), t, op, nullptr);
      },
      [&](size_t k, int s) {
        return st.q().to_device(at(recv, st.offset(k)), st.slot(s) + S * C * es, st.bytes(k));
      });
}

// Chunk k: this rank's elements [k*C, k*C + n) in the slot's front, every
// rank's in its tail, scattered to their blocks of recv.
void StagedBackend::allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) {
  if (sendcount == 0) return;
  const size_t es = dtype_size(t), C = chunk_elems(t, sendcount), S = static_cast<size_t>(size_);
  Staging st(pool_, *engine_, stream, sendcount, es, C, (S + 1) * C);
  st.run(
      st.chunks(),
      [&](size_t k, int s) { return st.q().to_host(st.slot(s), at(send, st.offset(k)), st.bytes(k)); },
      [&](size_t k, int s) { host_->allgather(st.slot(s), st.slot(s) + C * es, st.len(k), t, nullptr); },
      [&](size_t k, int s) {
        Ticket last = 0;
        for (size_t b = 0; b < S; ++b)
          last = st.q().to_device(at(recv, b * sendcount * es + st.offset(k)),
                                  st.slot(s) + C * es + b * st.bytes(k), st.bytes(k));
        return last;
      });
}

void StagedBackend::broadcast(void *buf, size_t count, DType t, int root, void *stream) {
  if (count == 0) return;
  const size_t C = chunk_elems(t, count);
  Staging st(pool_, *engine_, stream, count, dtype_size(t), C, C);
  auto to_host = [&](size_t k, int s) { return st.q().to_host(st.slot(s), at(buf, st.offset(k)), st.bytes(k)); };
  auto to_device = [&](size_t k, int s) { return st.q().to_device(at(buf, st.offset(k)), st.slot(s), st.bytes(k)); };
  auto transfer = [&](size_t k, int s) { host_->broadcast(st.slot(s), st.len(k), t, root, nullptr); };
  if (rank_ == root)
    st.run(st.chunks(), to_host, transfer, nothing);
  else
    st.run(st.chunks(), nothing, transfer, to_device);
}

void StagedBackend::gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts,
                            DType t, int root, void *stream) {
  const size_t es = dtype_size(t);
  size_t total = 0;
  if (rank_ == root)
    for (int r = 0; r < size_; ++r) total += recvcounts[r];
  auto stage = pool_.take((sendcount + total) * es);
  char *s_send = stage.data(), *s_recv = stage.data() + sendcount * es;
  auto q = engine_->queue(stream);
  q->wait(q->to_host(s_send, send, sendcount * es));
  host_->gatherv(s_send, sendcount, rank_ == root ? s_recv : nullptr, recvcounts, t, root, nullptr);
  if (rank_ == root) q->wait(q->to_device(recv, s_recv, total * es));
}

void StagedBackend::barrier() { host_->barrier(); }

// A staging buffer holding `bytes` of device memory at buf, copied once the
// work before on `stream` is done.
StagingPool::Buffer StagedBackend::staged_copy(const void *buf, size_t bytes, void *stream) {
  auto stage = pool_.take(bytes);
  auto q = engine_->queue(stream);
  q->wait(q->to_host(stage.data(), buf, bytes));
  return stage;
}

void StagedBackend::send(const void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  auto stage = staged_copy(buf, count * dtype_size(t), stream);
  p2p_->send(stage.data(), count, t, peer, tag, nullptr);
}

void StagedBackend::recv(void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  const size_t bytes = count * dtype_size(t);
  auto stage = pool_.take(bytes);
  p2p_->recv(stage.data(), count, t, peer, tag, nullptr);
  auto q = engine_->queue(stream);
  q->wait(q->to_device(buf, stage.data(), bytes));
}

int StagedBackend::recv_any(void *buf, size_t count, DType t, int tag, void *stream) {
  const size_t bytes = count * dtype_size(t);
  auto stage = pool_.take(bytes);
  const int source = p2p_->recv_any(stage.data(), count, t, tag, nullptr);
  auto q = engine_->queue(stream);
  q->wait(q->to_device(buf, stage.data(), bytes));
  return source;
}

RequestPtr StagedBackend::isend(const void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  auto stage = staged_copy(buf, count * dtype_size(t), stream);
  char *host = stage.data();
  auto req = std::make_unique<StagedRequest>(std::move(stage), engine_.get(), nullptr, 0, stream);
  req->attach(p2p_->isend(host, count, t, peer, tag, nullptr));
  return req;
}

RequestPtr StagedBackend::irecv(void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  const size_t bytes = count * dtype_size(t);
  auto stage = pool_.take(bytes);
  char *host = stage.data();
  auto req = std::make_unique<StagedRequest>(std::move(stage), engine_.get(), buf, bytes, stream);
  req->attach(p2p_->irecv(host, count, t, peer, tag, nullptr));
  return req;
}

}  // namespace smp::comm::staged
