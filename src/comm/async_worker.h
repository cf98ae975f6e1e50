// The progress engine of a communicator's non-blocking collectives: one
// thread that runs queued operations in issue order, so they complete
// without the caller polling, and every rank executes them in the order it
// issued them (which is what keeps them matched across ranks). Without
// MPI_THREAD_MULTIPLE there is no thread and submit() runs the operation
// at once.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "comm/request.h"

namespace smp::comm {

class AsyncWorker {
 public:
  explicit AsyncWorker(bool threaded);
  ~AsyncWorker();  // runs what is queued, then stops
  AsyncWorker(const AsyncWorker &) = delete;
  AsyncWorker &operator=(const AsyncWorker &) = delete;

  // Queues fn; the request completes when fn returns (or fails with what
  // it throws).
  RequestPtr submit(std::function<void()> fn);

  struct Job;  // one queued operation and its completion state

 private:
  void run();

  bool threaded_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace smp::comm
