#include "comm/nccl/nccl_backend.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

#include "comm/nccl/nccl_types.h"
#include "cuda/runtime.h"

namespace smp::comm::nccl {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ncclComm_t as_comm(void *c) { return static_cast<ncclComm_t>(c); }
cudaStream_t as_stream(void *s) { return static_cast<cudaStream_t>(s); }

}  // namespace

NcclBackend::NcclBackend(std::unique_ptr<Bootstrap> boot, std::unique_ptr<Backend> staged, double timeout_seconds,
                         std::unique_ptr<NcclApi> api, int world_rank)
    : LayeredBackend(std::move(staged)), api_(std::move(api)), boot_(std::move(boot)), timeout_(timeout_seconds),
      world_rank_(world_rank), nccl_(*api_, *boot_, timeout_seconds) {}

NcclBackend::~NcclBackend() {
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    stop_ = true;
  }
  watch_cv_.notify_all();
  if (watch_.joinable()) watch_.join();
  for (const Pending &p : pending_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(p.event));
}

void *NcclBackend::comm(const char *what) {
  const bool first = !nccl_.created() && nccl_.refusal().empty();
  void *c = nccl_.get();
  if (first && c) watch_ = std::thread([this] { watch_loop(); });
  if (first && !c) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      std::fprintf(stderr, "smp: rank %d: NCCL not used (%s); CUDA buffers take the %s path\n",
                   world_rank_, nccl_.refusal().c_str(), below().name());
  }
  if (c) nccl_.check_async(what);
  return c;
}

void NcclBackend::enqueued(int rc, const char *what, void *stream) {
  const double start = now_seconds();
  // A non-blocking communicator may still be enqueuing: poll it.
  while (rc == ncclInProgress) {
    void *c = nccl_.get();
    int state = ncclSuccess;
    if (api_->get_async_error(c, &state) != ncclSuccess) break;
    rc = state;
    if (rc == ncclInProgress && timeout_ > 0 && now_seconds() - start > timeout_) {
      nccl_.abort(Status::Timeout, std::string(what) + ": NCCL did not accept the operation within " +
                                       std::to_string(timeout_) + " s (SMP_TIMEOUT); communicator aborted");
      nccl_.get();  // throws the recorded error
    }
  }
  if (rc != ncclSuccess) {
    nccl_.abort(Status::Backend, std::string(what) + ": " + api_->error_string(rc) + " (" +
                                     ncclGetLastError(as_comm(nccl_.get())) + ")");
    nccl_.get();
  }
  cudaEvent_t ev = nullptr;
  cuda::check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "nccl: cudaEventCreate");
  const cudaError_t er = cudaEventRecord(ev, as_stream(stream));
  if (er != cudaSuccess) {
    (void)cudaEventDestroy(ev);
    cuda::check(er, "nccl: cudaEventRecord");
  }
  std::lock_guard<std::mutex> lock(watch_mu_);
  pending_.push_back({ev, start, what});
}

void NcclBackend::watch_loop() {
  std::unique_lock<std::mutex> lock(watch_mu_);
  while (!stop_) {
    watch_cv_.wait_for(lock, std::chrono::milliseconds(20));
    if (stop_) break;
    // Retire completed operations, oldest first (one stream or several:
    // an unfinished one does not stop the scan).
    std::string hung;
    for (auto it = pending_.begin(); it != pending_.end();) {
      const cudaError_t q = cudaEventQuery(static_cast<cudaEvent_t>(it->event));
      if (q == cudaErrorNotReady) {
        if (timeout_ > 0 && now_seconds() - it->start > timeout_ && hung.empty()) hung = it->what;
        ++it;
        continue;
      }
      (void)cudaEventDestroy(static_cast<cudaEvent_t>(it->event));
      it = pending_.erase(it);
    }
    lock.unlock();
    std::string error;
    if (!hung.empty()) {
      error = "smp: rank " + std::to_string(world_rank_) + ": " + hung + " on CUDA memory still pending after " +
              std::to_string(timeout_) + " s (SMP_TIMEOUT): NCCL communicator aborted";
      nccl_.abort(Status::Timeout, error);
    } else {
      try {
        nccl_.check_async("NCCL watch");
      } catch (const Error &e) {
        error = "smp: rank " + std::to_string(world_rank_) + ": " + e.what();
      }
    }
    if (!error.empty()) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return;  // the communicator is gone; calls now throw the error
    }
    lock.lock();
  }
}

void NcclBackend::allreduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, void *stream) {
  cuda::DeviceGuard device(cuda::device_of(recv));
  ncclRedOp_t nop;
  void *c = nccl_op(op, t, boot_->size(), &nop) ? comm("allreduce") : nullptr;
  if (!c) return below().allreduce(send, recv, count, t, op, stream);
  enqueued(ncclAllReduce(send, recv, count, nccl_type(t), nop, as_comm(c), as_stream(stream)), "allreduce", stream);
}

void NcclBackend::reduce_scatter(const void *send, void *recv, size_t recvcount, DType t, ReduceOp op,
                                 void *stream) {
  cuda::DeviceGuard device(cuda::device_of(recv));
  ncclRedOp_t nop;
  void *c = nccl_op(op, t, boot_->size(), &nop) ? comm("reduce_scatter") : nullptr;
  if (!c) return below().reduce_scatter(send, recv, recvcount, t, op, stream);
  enqueued(ncclReduceScatter(send, recv, recvcount, nccl_type(t), nop, as_comm(c), as_stream(stream)),
           "reduce_scatter", stream);
}

void NcclBackend::allgather(const void *send, void *recv, size_t sendcount, DType t, void *stream) {
  cuda::DeviceGuard device(cuda::device_of(recv));
  void *c = comm("allgather");
  if (!c) return below().allgather(send, recv, sendcount, t, stream);
  enqueued(ncclAllGather(send, recv, sendcount, nccl_type(t), as_comm(c), as_stream(stream)), "allgather", stream);
}

// recv is read on root only (NCCL ignores it elsewhere).
void NcclBackend::reduce(const void *send, void *recv, size_t count, DType t, ReduceOp op, int root,
                         void *stream) {
  cuda::DeviceGuard device(cuda::device_of(send));
  ncclRedOp_t nop;
  void *c = nccl_op(op, t, boot_->size(), &nop) ? comm("reduce") : nullptr;
  if (!c) return below().reduce(send, recv, count, t, op, root, stream);
  enqueued(ncclReduce(send, recv, count, nccl_type(t), nop, root, as_comm(c), as_stream(stream)), "reduce", stream);
}

void NcclBackend::broadcast(void *buf, size_t count, DType t, int root, void *stream) {
  cuda::DeviceGuard device(cuda::device_of(buf));
  void *c = comm("broadcast");
  if (!c) return below().broadcast(buf, count, t, root, stream);
  enqueued(ncclBroadcast(buf, buf, count, nccl_type(t), root, as_comm(c), as_stream(stream)), "broadcast", stream);
}

// Grouped point-to-point to root: one ncclGroupStart/End launches all the
// receives at once; root's own part is a device copy on the same stream.
void NcclBackend::gatherv(const void *send, size_t sendcount, void *recv, const size_t *recvcounts, DType t,
                          int root, void *stream) {
  cuda::DeviceGuard device(cuda::device_of(send ? send : recv));
  void *c = comm("gatherv");
  if (!c) return below().gatherv(send, sendcount, recv, recvcounts, t, root, stream);
  const ncclDataType_t T = nccl_type(t);
  const size_t es = dtype_size(t);
  const int rank = boot_->rank();
  if (rank != root) {
    if (sendcount == 0) return;  // root posts no receive for an empty part
    enqueued(ncclSend(send, sendcount, T, root, as_comm(c), as_stream(stream)), "gatherv", stream);
    return;
  }
  size_t displ = 0;
  for (int r = 0; r < rank; ++r) displ += recvcounts[r];
  char *own = static_cast<char *>(recv) + displ * es;
  if (sendcount > 0 && own != send)
    cuda::check(cudaMemcpyAsync(own, send, sendcount * es, cudaMemcpyDeviceToDevice, as_stream(stream)),
                "gatherv: cudaMemcpyAsync");
  ncclResult_t rc = ncclGroupStart();
  displ = 0;
  for (int r = 0; r < boot_->size() && rc == ncclSuccess; ++r) {
    if (r != root && recvcounts[r] > 0)
      rc = ncclRecv(static_cast<char *>(recv) + displ * es, recvcounts[r], T, r, as_comm(c), as_stream(stream));
    displ += recvcounts[r];
  }
  const ncclResult_t end = ncclGroupEnd();
  enqueued(rc != ncclSuccess ? rc : end, "gatherv", stream);
}

}  // namespace smp::comm::nccl
