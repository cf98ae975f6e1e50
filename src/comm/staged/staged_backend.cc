#include "comm/staged/staged_backend.h"

#include <algorithm>
#include <string>
#include <vector>

#include "comm/staged/pipeline.h"
#include "common/error.h"

namespace smp::comm::staged {

namespace {

using Ticket = CopyQueue::Ticket;

char *at(void *p, size_t bytes) { return static_cast<char *>(p) + bytes; }
const char *at(const void *p, size_t bytes) { return static_cast<const char *>(p) + bytes; }

size_t chunks_of(size_t count, size_t chunk) { return (count + chunk - 1) / chunk; }

// An irecv into a staging buffer, copied to the device once it arrives; an
// isend keeps its staged copy alive until the send completes.
class StagedRequest final : public Request {
 public:
  StagedRequest(StagingPool::Buffer buf, CopyEngine *engine, void *device, size_t bytes, void *stream)
      : buf_(std::move(buf)), engine_(engine), device_(device), bytes_(bytes), stream_(stream) {}
  void attach(RequestPtr inner) { inner_.push_back(std::move(inner)); }
  ~StagedRequest() override {
    try {
      wait();
    } catch (...) {  // destruction drops errors (request.h)
    }
  }
  void wait() override {
    for (auto &r : inner_) r->wait();
    deliver();
  }
  bool test() override {
    for (auto &r : inner_)
      if (!r->test()) return false;
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

  StagingPool::Buffer buf_;  // declared before inner_: outlives the MPI requests
  std::vector<RequestPtr> inner_;  // one per chunk, as send / recv frame them
  CopyEngine *engine_;
  void *device_;  // receive: where the message goes; send: nullptr
  size_t bytes_;
  void *stream_;
  bool delivered_ = false;
};

}  // namespace

StagedBackend::StagedBackend(std::unique_ptr<Backend> host, int rank, int size,
                             std::shared_ptr<CopyEngine> engine, size_t chunk_bytes)
    : host_(std::move(host)), rank_(rank), size_(size), engine_(std::move(engine)),
      chunk_bytes_(std::max<size_t>(chunk_bytes, 8)), pool_(*engine_) {}

StagedBackend::~StagedBackend() = default;

size_t StagedBackend::chunk_elems(DType t) const { return std::max<size_t>(1, chunk_bytes_ / dtype_size(t)); }

void StagedBackend::allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op,
                              void *stream) {
  if (count == 0) return;
  const size_t es = dtype_size(t), C = chunk_elems(t);
  auto buf = pool_.take(2 * C * es);
  auto q = engine_->queue(stream);
  auto slot = [&](int s) { return buf.data() + static_cast<size_t>(s) * C * es; };
  auto len = [&](size_t k) { return std::min(C, count - k * C); };
  run_pipeline(
      *q, chunks_of(count, C),
      [&](size_t k, int s) { return q->to_host(slot(s), at(send, k * C * es), len(k) * es); },
      [&](size_t k, int s) { host_->allreduce(slot(s), slot(s), len(k), t, op, nullptr); },
      [&](size_t k, int s) { return q->to_device(at(recv, k * C * es), slot(s), len(k) * es); });
}

// Chunk k takes elements [k*C, k*C + n) of every rank's block: gathered
// into the slot's front, reduced into its tail, copied to recv.
void StagedBackend::reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                                   void *stream) {
  if (recvcount == 0) return;
  const size_t es = dtype_size(t), C = chunk_elems(t), S = static_cast<size_t>(size_);
  const size_t slot_bytes = (S + 1) * C * es;
  auto buf = pool_.take(2 * slot_bytes);
  auto q = engine_->queue(stream);
  auto slot = [&](int s) { return buf.data() + static_cast<size_t>(s) * slot_bytes; };
  auto len = [&](size_t k) { return std::min(C, recvcount - k * C); };
  run_pipeline(
      *q, chunks_of(recvcount, C),
      [&](size_t k, int s) {
        Ticket last = 0;
        for (size_t b = 0; b < S; ++b)
          last = q->to_host(slot(s) + b * len(k) * es, at(send, (b * recvcount + k * C) * es), len(k) * es);
        return last;
      },
      [&](size_t k, int s) {
        host_->reduce_scatter(slot(s), slot(s) + S * C * es, len(k), t, op, nullptr);
      },
      [&](size_t k, int s) {
        return q->to_device(at(recv, k * C * es), slot(s) + S * C * es, len(k) * es);
      });
}

// Chunk k: this rank's elements [k*C, k*C + n) in the slot's front, every
// rank's in its tail, scattered to their blocks of recv.
void StagedBackend::allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) {
  if (sendcount == 0) return;
  const size_t es = dtype_size(t), C = chunk_elems(t), S = static_cast<size_t>(size_);
  const size_t slot_bytes = (S + 1) * C * es;
  auto buf = pool_.take(2 * slot_bytes);
  auto q = engine_->queue(stream);
  auto slot = [&](int s) { return buf.data() + static_cast<size_t>(s) * slot_bytes; };
  auto len = [&](size_t k) { return std::min(C, sendcount - k * C); };
  run_pipeline(
      *q, chunks_of(sendcount, C),
      [&](size_t k, int s) { return q->to_host(slot(s), at(send, k * C * es), len(k) * es); },
      [&](size_t k, int s) { host_->allgather(slot(s), slot(s) + C * es, len(k), t, nullptr); },
      [&](size_t k, int s) {
        Ticket last = 0;
        for (size_t b = 0; b < S; ++b)
          last = q->to_device(at(recv, (b * sendcount + k * C) * es), slot(s) + (C + b * len(k)) * es,
                              len(k) * es);
        return last;
      });
}

void StagedBackend::broadcast(void *buf, size_t count, DType t, int root, void *stream) {
  if (count == 0) return;
  const size_t es = dtype_size(t), C = chunk_elems(t);
  const bool is_root = rank_ == root;
  auto stage = pool_.take(2 * C * es);
  auto q = engine_->queue(stream);
  auto slot = [&](int s) { return stage.data() + static_cast<size_t>(s) * C * es; };
  auto len = [&](size_t k) { return std::min(C, count - k * C); };
  run_pipeline(
      *q, chunks_of(count, C),
      [&](size_t k, int s) { return is_root ? q->to_host(slot(s), at(buf, k * C * es), len(k) * es) : Ticket{0}; },
      [&](size_t k, int s) { host_->broadcast(slot(s), len(k), t, root, nullptr); },
      [&](size_t k, int s) { return is_root ? Ticket{0} : q->to_device(at(buf, k * C * es), slot(s), len(k) * es); });
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

void StagedBackend::send(const void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  const size_t es = dtype_size(t), C = chunk_elems(t);
  auto stage = pool_.take(2 * C * es);
  auto q = engine_->queue(stream);
  auto slot = [&](int s) { return stage.data() + static_cast<size_t>(s) * C * es; };
  auto len = [&](size_t k) { return std::min(C, count - k * C); };
  // At least one message, also for count 0, as the receiver expects.
  run_pipeline(
      *q, std::max<size_t>(1, chunks_of(count, C)),
      [&](size_t k, int s) { return q->to_host(slot(s), at(buf, k * C * es), len(k) * es); },
      [&](size_t k, int s) { host_->send(slot(s), len(k), t, peer, tag, nullptr); },
      [&](size_t, int) { return Ticket{0}; });
}

void StagedBackend::recv(void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  const size_t es = dtype_size(t), C = chunk_elems(t);
  auto stage = pool_.take(2 * C * es);
  auto q = engine_->queue(stream);
  auto slot = [&](int s) { return stage.data() + static_cast<size_t>(s) * C * es; };
  auto len = [&](size_t k) { return std::min(C, count - k * C); };
  run_pipeline(
      *q, std::max<size_t>(1, chunks_of(count, C)),
      [&](size_t, int) { return Ticket{0}; },
      [&](size_t k, int s) { host_->recv(slot(s), len(k), t, peer, tag, nullptr); },
      [&](size_t k, int s) { return q->to_device(at(buf, k * C * es), slot(s), len(k) * es); });
}

RequestPtr StagedBackend::isend(const void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  const size_t bytes = count * dtype_size(t);
  auto stage = pool_.take(bytes);
  {
    auto q = engine_->queue(stream);
    q->wait(q->to_host(stage.data(), buf, bytes));
  }
  char *host = stage.data();
  auto req = std::make_unique<StagedRequest>(std::move(stage), engine_.get(), nullptr, 0, stream);
  // The same chunk messages as send(), so any staged receive matches them.
  const size_t es = dtype_size(t), C = chunk_elems(t);
  for (size_t k = 0; k < std::max<size_t>(1, chunks_of(count, C)); ++k)
    req->attach(host_->isend(host + k * C * es, std::min(C, count - k * C), t, peer, tag, nullptr));
  return req;
}

RequestPtr StagedBackend::irecv(void *buf, size_t count, DType t, int peer, int tag, void *stream) {
  const size_t bytes = count * dtype_size(t);
  auto stage = pool_.take(bytes);
  char *host = stage.data();
  auto req = std::make_unique<StagedRequest>(std::move(stage), engine_.get(), buf, bytes, stream);
  const size_t es = dtype_size(t), C = chunk_elems(t);
  for (size_t k = 0; k < std::max<size_t>(1, chunks_of(count, C)); ++k)
    req->attach(host_->irecv(host + k * C * es, std::min(C, count - k * C), t, peer, tag, nullptr));
  return req;
}

}  // namespace smp::comm::staged
