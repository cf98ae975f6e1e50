// SharedMemory over POSIX shared memory for the CPU tests: "device"
// buffers are host buffers, a segment is a shm object that other processes
// map by name, copies are memcpy and reductions comm/reduce.h. Every copy
// and reduction is queued and runs only when synchronize() is called, as
// asynchronous device work may run late: an algorithm that lets a peer read
// a segment before its owner synchronized produces wrong data and fails its
// test. With a delay, synchronize() sleeps before it runs the queue: ranks
// with one run their reads of a chunk late, after the punctual ranks have
// already refilled their segments for later chunks, so an algorithm that
// refills a half a peer's pending read still needs fails too.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "comm/ipc/shared_memory.h"
#include "comm/reduce.h"

namespace smp::comm::ipc::testing {

class ShmMemory final : public SharedMemory {
 public:
  // key: what key() answers (equal keys: one "device").
  explicit ShmMemory(std::string key) : key_(std::move(key)) {}
  ~ShmMemory() override {
    for (auto &[p, bytes] : mapped_) munmap(const_cast<void *>(p), bytes);
  }
  bool fail_allocate = false, fail_open = false;
  std::chrono::microseconds delay{0};
  int synchronizations = 0;

  std::string key(const void *) override { return key_; }

  void *allocate(size_t bytes, const void *, std::string *handle, std::string *error) override {
    if (fail_allocate) {
      *error = "injected allocation failure";
      return nullptr;
    }
    static std::atomic<int> serial{0};
    const std::string name = "/smp-ipc-test-" + std::to_string(getpid()) + "-" + std::to_string(serial++);
    const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return failed(error, "shm_open " + name);
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      close_fd_unlink(fd, name);
      return failed(error, "ftruncate");
    }
    void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) {
      shm_unlink(name.c_str());
      return failed(error, "mmap");
    }
    names_[p] = name;
    mapped_[p] = bytes;
    *handle = name;
    return p;
  }
  void release(void *segment) noexcept override {
    unmap(segment);
    shm_unlink(names_[segment].c_str());
    names_.erase(segment);
  }
  const void *open(const std::string &handle, std::string *error) override {
    if (fail_open) {
      *error = "injected open failure";
      return nullptr;
    }
    const int fd = shm_open(handle.c_str(), O_RDWR, 0600);
    if (fd < 0) return failed(error, "shm_open " + handle);
    struct stat st {};
    fstat(fd, &st);
    const size_t bytes = static_cast<size_t>(st.st_size);
    void *p = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return failed(error, "mmap " + handle);
    mapped_[p] = bytes;
    return p;
  }
  void close(const void *mapped) noexcept override { unmap(mapped); }

  void copy(void *dst, const void *src, size_t bytes, void *) override {
    pending_.push_back([=] { std::memmove(dst, src, bytes); });
  }
  void reduce(void *out, const void *const *ins, int n, size_t count, DType t, ReduceOp op, int group_size,
              void *) override {
    std::vector<const void *> in(ins, ins + n);
    pending_.push_back([=] {
      std::vector<char> acc(count * accumulator_size(t));
      reduce_first(acc.data(), in[0], in[1], count, t, op);
      for (size_t i = 2; i < in.size(); ++i) reduce_accumulate(acc.data(), in[i], count, t, op);
      reduce_finish(out, acc.data(), count, t, op, group_size);
    });
  }
  void synchronize(void *) override {
    ++synchronizations;
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    for (auto &f : pending_) f();
    pending_.clear();
  }

 private:
  void *failed(std::string *error, const std::string &what) {
    *error = what + ": " + std::strerror(errno);
    return nullptr;
  }
  static void close_fd_unlink(int fd, const std::string &name) {
    ::close(fd);
    shm_unlink(name.c_str());
  }
  void unmap(const void *p) {
    auto it = mapped_.find(p);
    if (it == mapped_.end()) return;
    munmap(const_cast<void *>(p), it->second);
    mapped_.erase(it);
  }

  std::string key_;
  std::map<const void *, size_t> mapped_;     // everything mapped here, with its size
  std::map<const void *, std::string> names_;  // this process's own segments
  std::vector<std::function<void()>> pending_;
};

}  // namespace smp::comm::ipc::testing
