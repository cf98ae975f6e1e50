// torch.distributed's backend "smp": a c10d::ProcessGroup (torch 1.13's
// API) whose collectives are smp's C API calls on one smp group: a layout
// group (WORLD, TP, ...) or one made by smp_group_create for new_group().
//
// Completion: send and recv, and allreduce, allgather and reduce-scatter
// from SMP_TORCH_ASYNC_BYTES (1 MiB) up, run non-blocking in smp and return
// a Work still in flight; the others complete before they return, as smp's
// blocking calls do (smaller collectives are faster so: no worker hand-off). Work::wait runs
// smp_wait on the caller's thread; a Work whose future is asked for (DDP
// does) is also handed to this group's completer thread, which waits for
// such works in issue order (smp completes a group's non-blocking
// collectives in that order) and completes their futures.
//
// Errors: a call smp refuses raises at once (a RuntimeError carrying
// smp_last_error(), prefixed "smp backend: <op>:"); one that fails in flight
// raises from wait() and sets the future's error.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "smp/smp.h"

namespace smp_torch {

class SmpWork;

// Completes, in issue order, the works whose futures were asked for.
class Completer {
 public:
  Completer() = default;
  ~Completer();
  void add(c10::intrusive_ptr<SmpWork> work);

 private:
  void loop();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<c10::intrusive_ptr<SmpWork>> queue_;
  bool stop_ = false;
  std::thread thread_;  // started by the first add()
};

class SmpWork : public c10d::Work {
 public:
  // requests: smp's requests to wait for (none: complete at once);
  // then: runs after they all succeed (copies out of a staging buffer);
  // outputs: the op's results (Work::result, the future's value).
  SmpWork(int rank, c10d::OpType type, const char *op, std::vector<smp_request_t> requests,
          std::vector<at::Tensor> outputs, std::function<void()> then,
          std::weak_ptr<Completer> completer);
  // A receive from any source running on its own thread (smp_recv_any
  // has no non-blocking twin): the future yields the source.
  SmpWork(int rank, const char *op, std::future<int> source, std::vector<at::Tensor> outputs,
          std::weak_ptr<Completer> completer);
  ~SmpWork() override;

  bool isCompleted() override;
  bool wait(std::chrono::milliseconds timeout = kNoTimeout) override;
  std::vector<at::Tensor> result() override { return outputs_; }
  int sourceRank() const override { return source_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override;

  void set_source(int source) { source_ = source; }
  // Waits for every request (on this thread), runs `then`, completes the
  // work and its future; later calls return at once.
  void complete();

 private:
  void finish_with(std::exception_ptr error);

  std::string op_;
  std::mutex wait_mutex_;  // one thread at a time waits for the requests
  std::vector<smp_request_t> requests_;
  std::vector<at::Tensor> outputs_;
  std::function<void()> then_;
  std::future<int> any_source_;
  std::weak_ptr<Completer> completer_;  // its group's; a work may outlive the group
  c10::intrusive_ptr<c10::ivalue::Future> future_;
  bool done_ = false;              // guarded by wait_mutex_
  std::exception_ptr test_error_;  // a request isCompleted found failed (and freed)
  int source_ = -1;
};

class ProcessGroupSmp : public c10d::ProcessGroup {
 public:
  // group: an smp group this rank is a member of; owned: destroyed with
  // this object (one made by smp_group_create).
  ProcessGroupSmp(smp_group_t group, bool owned);
  ~ProcessGroupSmp() override;

  const std::string getBackendName() const override { return "smp"; }
  smp_group_t smp_group() const { return group_; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor> &tensors,
                                           const c10d::BroadcastOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor> &tensors,
                                           const c10d::AllreduceOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(
      std::vector<at::Tensor> &tensors, const c10d::AllreduceCoalescedOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor> &tensors,
                                        const c10d::ReduceOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>> &outputs,
                                           std::vector<at::Tensor> &inputs,
                                           const c10d::AllgatherOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor &output, at::Tensor &input,
                                                 const c10d::AllgatherOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> allgather_coalesced(
      std::vector<std::vector<at::Tensor>> &outputs, std::vector<at::Tensor> &inputs,
      const c10d::AllgatherOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>> &outputs,
                                        std::vector<at::Tensor> &inputs,
                                        const c10d::GatherOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor> &outputs,
                                         std::vector<std::vector<at::Tensor>> &inputs,
                                         const c10d::ScatterOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor> &outputs,
                                                std::vector<std::vector<at::Tensor>> &inputs,
                                                const c10d::ReduceScatterOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(
      at::Tensor &output, at::Tensor &input, const c10d::ReduceScatterOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor &output, at::Tensor &input,
                                               std::vector<int64_t> &output_splits,
                                               std::vector<int64_t> &input_splits,
                                               const c10d::AllToAllOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> alltoall(std::vector<at::Tensor> &outputs,
                                          std::vector<at::Tensor> &inputs,
                                          const c10d::AllToAllOptions &opts) override;
  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor> &tensors, int dst,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor> &tensors, int src,
                                      int tag) override;
  c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor> &tensors,
                                               int tag) override;
  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions &opts) override;

 private:
  c10::intrusive_ptr<SmpWork> done(c10d::OpType type, const char *op,
                                   std::vector<at::Tensor> outputs);
  c10::intrusive_ptr<SmpWork> in_flight(c10d::OpType type, const char *op,
                                        std::vector<smp_request_t> requests,
                                        std::vector<at::Tensor> outputs,
                                        std::function<void()> then = nullptr);

  smp_group_t group_;
  bool owned_;
  std::shared_ptr<Completer> completer_;
};

}  // namespace smp_torch
