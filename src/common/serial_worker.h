// One thread that runs posted jobs one at a time, in the order they were
// posted: the queue under comm's non-blocking collectives (comm/
// async_worker.h), and the shape of ckpt's write queue and the torch
// plugin's completer. Header-only, so any layer (and the plugin, which sees
// only the C API) can use it. A job must not throw: catch inside it and
// report through whatever state it completes (an exception escaping a job
// ends the process, as from any thread).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace smp {

class SerialWorker {
 public:
  // max_pending > 0: post() waits while that many jobs are queued (not
  // counting the one running), which bounds what the queue holds.
  explicit SerialWorker(size_t max_pending = 0)
      : max_pending_(max_pending), thread_([this] { loop(); }) {}
  // Runs every job already posted, then stops.
  ~SerialWorker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  SerialWorker(const SerialWorker &) = delete;
  SerialWorker &operator=(const SerialWorker &) = delete;

  void post(std::function<void()> job) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (max_pending_ > 0) done_cv_.wait(lock, [&] { return jobs_.size() < max_pending_; });
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

  // Waits until every job posted before the call has run.
  void drain() {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return jobs_.empty() && !busy_; });
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping, and nothing is left
        job = std::move(jobs_.front());
        jobs_.pop_front();
        busy_ = true;
      }
      done_cv_.notify_all();  // room for a waiting post()
      job();
      job = nullptr;  // release its captures before reporting idle
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_ = false;
      }
      done_cv_.notify_all();
    }
  }

  const size_t max_pending_;
  std::mutex mu_;
  std::condition_variable cv_;       // a job or stop arrived
  std::condition_variable done_cv_;  // a job left the queue or finished
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace smp
