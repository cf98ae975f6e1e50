#include "comm/async_worker.h"

#include <condition_variable>
#include <exception>
#include <mutex>

namespace smp::comm {

struct AsyncWorker::Job {
  std::function<void()> fn;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;

  void run() {
    std::exception_ptr e;
    try {
      fn();
    } catch (...) {
      e = std::current_exception();
    }
    fn = nullptr;  // release captures before reporting completion
    {
      std::lock_guard<std::mutex> lock(mu);
      error = e;
      done = true;
    }
    cv.notify_all();
  }
};

namespace {

class AsyncRequest final : public Request {
 public:
  explicit AsyncRequest(std::shared_ptr<AsyncWorker::Job> job) : job_(std::move(job)) {}
  ~AsyncRequest() override {
    std::unique_lock<std::mutex> lock(job_->mu);
    job_->cv.wait(lock, [&] { return job_->done; });
  }
  void wait() override {
    {
      std::unique_lock<std::mutex> lock(job_->mu);
      job_->cv.wait(lock, [&] { return job_->done; });
    }
    if (job_->error) std::rethrow_exception(job_->error);
  }
  bool test() override {
    {
      std::lock_guard<std::mutex> lock(job_->mu);
      if (!job_->done) return false;
    }
    if (job_->error) std::rethrow_exception(job_->error);
    return true;
  }

 private:
  std::shared_ptr<AsyncWorker::Job> job_;
};

}  // namespace

AsyncWorker::AsyncWorker(bool threaded) {
  if (threaded) thread_ = std::make_unique<SerialWorker>();
}

RequestPtr AsyncWorker::submit(std::function<void()> fn) {
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  if (thread_)
    thread_->post([job] { job->run(); });  // Job::run catches what fn throws
  else
    job->run();
  return std::make_unique<AsyncRequest>(std::move(job));
}

}  // namespace smp::comm
