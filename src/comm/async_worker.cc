#include "comm/async_worker.h"

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

AsyncWorker::AsyncWorker(bool threaded) : threaded_(threaded) {
  if (threaded_) thread_ = std::thread([this] { run(); });
}

AsyncWorker::~AsyncWorker() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

RequestPtr AsyncWorker::submit(std::function<void()> fn) {
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  if (!threaded_) {
    job->run();
  } else {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    cv_.notify_one();
  }
  return std::make_unique<AsyncRequest>(std::move(job));
}

void AsyncWorker::run() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and drained
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job->run();
  }
}

}  // namespace smp::comm
