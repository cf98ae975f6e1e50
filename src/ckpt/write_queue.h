// A background thread that appends buffers to safetensors Writers, so the
// disk (and the CRC) work while the next chunk is being gathered. At most
// max_pending jobs wait, which bounds the memory a consolidated save holds.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "ckpt/safetensors.h"

namespace smp::ckpt {

class WriteQueue {
 public:
  explicit WriteQueue(size_t max_pending);
  ~WriteQueue();
  WriteQueue(const WriteQueue &) = delete;
  WriteQueue &operator=(const WriteQueue &) = delete;

  // Appends buf to w (the queue owns buf meanwhile).
  void push(Writer *w, std::vector<char> buf);
  // Appends n bytes at p, which must stay valid until finish().
  void push_view(Writer *w, const char *p, size_t n);
  // A buffer from a finished job, for reuse (empty if none).
  std::vector<char> recycled();
  // Waits for every job; rethrows the first failure.
  void finish();

 private:
  struct Job {
    Writer *w;
    std::vector<char> owned;
    const char *p;
    size_t n;
  };
  void enqueue(Job job);
  void loop();

  size_t max_pending_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::vector<std::vector<char>> free_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace smp::ckpt
