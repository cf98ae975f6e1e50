#include "ckpt/write_queue.h"

namespace smp::ckpt {

WriteQueue::WriteQueue(size_t max_pending) : max_pending_(max_pending ? max_pending : 1) {
  thread_ = std::thread([this] { loop(); });
}

WriteQueue::~WriteQueue() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WriteQueue::enqueue(Job job) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return jobs_.size() < max_pending_; });
  jobs_.push_back(std::move(job));
  cv_.notify_all();
}

void WriteQueue::push(Writer *w, std::vector<char> buf) {
  const char *p = buf.data();
  const size_t n = buf.size();
  enqueue(Job{w, std::move(buf), p, n});
}

void WriteQueue::push_view(Writer *w, const char *p, size_t n) { enqueue(Job{w, {}, p, n}); }

std::vector<char> WriteQueue::recycled() {
  std::lock_guard<std::mutex> lk(mu_);
  if (free_.empty()) return {};
  std::vector<char> b = std::move(free_.back());
  free_.pop_back();
  return b;
}

void WriteQueue::finish() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return jobs_.empty() && !busy_; });
  if (error_) std::rethrow_exception(error_);
}

void WriteQueue::loop() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stop_ and nothing left
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    busy_ = true;
    const bool skip = static_cast<bool>(error_);  // after a failure, drain without writing
    lk.unlock();
    std::exception_ptr err;
    if (!skip) {
      try {
        job.w->append(job.p, job.n);
      } catch (...) {
        err = std::current_exception();
      }
    }
    lk.lock();
    if (err && !error_) error_ = err;
    if (!job.owned.empty() && free_.size() < max_pending_ + 1) free_.push_back(std::move(job.owned));
    busy_ = false;
    cv_.notify_all();
  }
}

}  // namespace smp::ckpt
