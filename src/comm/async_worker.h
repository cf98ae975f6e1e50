// The progress engine of a communicator's non-blocking collectives: one
// thread that runs queued operations in issue order, so they complete
// without the caller polling, and every rank executes them in the order it
// issued them (which is what keeps them matched across ranks). Without
// MPI_THREAD_MULTIPLE there is no thread and submit() runs the operation
// at once. The thread and its queue are common/serial_worker.h's; this adds
// the request that completes with each operation.
#pragma once

#include <functional>
#include <memory>

#include "comm/request.h"
#include "common/serial_worker.h"

namespace smp::comm {

class AsyncWorker {
 public:
  explicit AsyncWorker(bool threaded);
  ~AsyncWorker() = default;  // runs what is queued, then stops
  AsyncWorker(const AsyncWorker &) = delete;
  AsyncWorker &operator=(const AsyncWorker &) = delete;

  // Queues fn; the request completes when fn returns (or fails with what
  // it throws).
  RequestPtr submit(std::function<void()> fn);

  struct Job;  // one queued operation and its completion state

 private:
  std::unique_ptr<SerialWorker> thread_;  // null without MPI_THREAD_MULTIPLE
};

}  // namespace smp::comm
