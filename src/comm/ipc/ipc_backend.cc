#include "comm/ipc/ipc_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <utility>
#include <vector>

#include "common/error.h"

namespace smp::comm::ipc {

namespace {

char *at(void *p, size_t bytes) { return static_cast<char *>(p) + bytes; }
const char *at(const void *p, size_t bytes) { return static_cast<const char *>(p) + bytes; }

// count elements cut into chunks of C (the last one shorter).
struct Chunks {
  size_t count, C;
  size_t n() const { return (count + C - 1) / C; }
  size_t len(size_t k) const { return std::min(C, count - k * C); }
  size_t first(size_t k) const { return k * C; }
};

}  // namespace

IpcBackend::IpcBackend(std::unique_ptr<Bootstrap> boot, std::shared_ptr<SharedMemory> mem,
                       std::unique_ptr<Backend> fallback, size_t chunk_bytes, int world_rank, bool required,
                       size_t min_bytes)
    : LayeredBackend(std::move(fallback)), boot_(std::move(boot)), mem_(std::move(mem)),
      // A reduce-scatter chunk holds at least one element of each of up to
      // kMaxInputs blocks of up to 8 bytes; whole 64-byte lines keep every
      // chunk's start aligned for the kernels' vector loads.
      half_bytes_(std::max<size_t>(chunk_bytes, kMaxInputs * 8) / 64 * 64), min_bytes_(min_bytes),
      world_rank_(world_rank),
      required_(required), rank_(boot_->rank()), size_(boot_->size()) {}

IpcBackend::~IpcBackend() {
  if (!segs_) return;
  try {
    close_segments(*boot_, *mem_, *segs_);
  } catch (...) {  // a peer is gone: leave this rank's segment allocated
  }
}

bool IpcBackend::served(const void *probe, size_t bytes, void *stream) {
  if (!tried_) {
    tried_ = true;
    segs_ = open_segments(*boot_, *mem_, probe, 2 * half_bytes_, &refusal_);
    if (segs_ && min_bytes_ == kAutoMinBytes) min_bytes_ = min_bytes_for_step(measure_step_us(stream));
    static std::atomic<bool> said{false};
    if (!segs_ && size_ > 1 && !required_ && !said.exchange(true))
      std::fprintf(stderr, "smp: rank %d: CUDA IPC not used (%s); CUDA buffers take the staged path\n",
                   world_rank_, refusal_.c_str());
  }
  // A group of one rank has nothing to share: the fallback serves it.
  if (!segs_ && required_ && size_ > 1)
    fail(Status::Backend, "CUDA IPC required (SMP_CUDA_IPC=require) but not used: " + refusal_);
  return segs_.has_value() && bytes >= min_bytes_;
}

int IpcBackend::measure_step_us(void *stream) {
  constexpr int kSteps = 9;
  mem_->synchronize(stream);  // the caller's earlier work is not part of a step
  // The step: a reduction of 16 floats of this rank's own segment, a kernel
  // as every chunk here launches (a kernel surely takes a turn where
  // processes take turns; a small copy might run on a copy engine, which
  // does not). No member reads segments yet.
  const void *ins[2] = {own_half(0), own_half(0)};
  std::vector<double> us;
  for (int i = 0; i < kSteps; ++i) {
    boot_->barrier();
    const auto t0 = std::chrono::steady_clock::now();
    mem_->reduce(own_half(1), ins, 2, 16, DType::F32, ReduceOp::Max, size_, stream);
    mem_->synchronize(stream);
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(us.begin(), us.begin() + kSteps / 2, us.end());
  const int mine = static_cast<int>(std::min(us[kSteps / 2], 1e9));
  return -boot_->all_min(-mine);  // the slowest member's
}

const char *IpcBackend::half(int member, size_t k) const {
  return static_cast<const char *>(segs_->member[static_cast<size_t>(member)]) + (k % 2) * half_bytes_;
}

char *IpcBackend::own_half(size_t k) const { return static_cast<char *>(segs_->local) + (k % 2) * half_bytes_; }

template <class Fill, class Read>
void IpcBackend::run(size_t nchunks, Fill &&fill, Read &&read, void *stream) {
  for (size_t k = 0; k < nchunks; ++k) {
    fill(k);
    mem_->synchronize(stream);
    boot_->barrier();
    read(k);
  }
  mem_->synchronize(stream);
  boot_->barrier();
}

void IpcBackend::allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *stream) {
  if (count == 0) return;
  if (!served(recv, count * dtype_size(t), stream)) return below().allreduce(send, recv, count, t, op, stream);
  const size_t es = dtype_size(t);
  const Chunks c{count, half_bytes_ / es};
  std::vector<const void *> ins(static_cast<size_t>(size_));
  run(
      c.n(), [&](size_t k) { mem_->copy(own_half(k), at(send, c.first(k) * es), c.len(k) * es, stream); },
      [&](size_t k) {
        for (int r = 0; r < size_; ++r) ins[static_cast<size_t>(r)] = half(r, k);
        mem_->reduce(at(recv, c.first(k) * es), ins.data(), size_, c.len(k), t, op, size_, stream);
      },
      stream);
}

// Chunk k holds elements [k*C, k*C + len) of each of the S blocks, block b
// at b*len of the half; this rank reduces its own block's piece from every
// member's half straight into recv.
void IpcBackend::reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                                void *stream) {
  if (recvcount == 0) return;
  if (!served(recv, recvcount * dtype_size(t) * static_cast<size_t>(size_), stream))
    return below().reduce_scatter(send, recv, recvcount, t, op, stream);
  const size_t es = dtype_size(t), S = static_cast<size_t>(size_);
  // Whole 16-byte vectors per block where they fit, so that recv and the
  // blocks in the halves stay aligned from chunk to chunk.
  const size_t per_block = half_bytes_ / (S * es), vec = 16 / es;
  const Chunks c{recvcount, per_block >= vec ? per_block / vec * vec : per_block};
  std::vector<const void *> ins(S);
  run(
      c.n(),
      [&](size_t k) {
        for (size_t b = 0; b < S; ++b)
          mem_->copy(own_half(k) + b * c.len(k) * es, at(send, (b * recvcount + c.first(k)) * es),
                     c.len(k) * es, stream);
      },
      [&](size_t k) {
        // In the host reduce-scatter's order (own, rank-1, rank-2, ...:
        // comm/mpi/pairwise_reduce_scatter), so the bytes equal the host's.
        const size_t me = static_cast<size_t>(rank_);
        for (size_t j = 0; j < S; ++j) ins[j] = half(static_cast<int>((me + S - j) % S), k) + me * c.len(k) * es;
        mem_->reduce(at(recv, c.first(k) * es), ins.data(), size_, c.len(k), t, op, size_, stream);
      },
      stream);
}

void IpcBackend::allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) {
  if (sendcount == 0) return;
  if (!served(recv, sendcount * dtype_size(t) * static_cast<size_t>(size_), stream))
    return below().allgather(send, recv, sendcount, t, stream);
  const size_t es = dtype_size(t);
  const Chunks c{sendcount, half_bytes_ / es};
  run(
      c.n(), [&](size_t k) { mem_->copy(own_half(k), at(send, c.first(k) * es), c.len(k) * es, stream); },
      [&](size_t k) {
        for (int r = 0; r < size_; ++r)
          mem_->copy(at(recv, (static_cast<size_t>(r) * sendcount + c.first(k)) * es), half(r, k),
                     c.len(k) * es, stream);
      },
      stream);
}

void IpcBackend::broadcast(void *buf, size_t count, DType t, int root, void *stream) {
  if (count == 0) return;
  if (!served(buf, count * dtype_size(t), stream)) return below().broadcast(buf, count, t, root, stream);
  const size_t es = dtype_size(t);
  const Chunks c{count, half_bytes_ / es};
  run(
      c.n(),
      [&](size_t k) {
        if (rank_ == root) mem_->copy(own_half(k), at(buf, c.first(k) * es), c.len(k) * es, stream);
      },
      [&](size_t k) {
        if (rank_ != root) mem_->copy(at(buf, c.first(k) * es), half(root, k), c.len(k) * es, stream);
      },
      stream);
}

}  // namespace smp::comm::ipc
