// A Bootstrap over threads, one thread per rank, for the unit tests of the
// control plane and of setup protocols (NCCL communicator creation, CUDA
// IPC segments). Ranks of a fake group meet in rounds: every member
// contributes, the last one in wakes the others.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/bootstrap.h"

namespace smp::comm::testing {

// One fake group's meeting point.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), box_(static_cast<size_t>(size)) {}
  int size() const { return size_; }
  // Every member's contribution to this round, in rank order.
  std::vector<std::string> exchange(int rank, const std::string &mine) {
    std::unique_lock<std::mutex> lock(mu_);
    const long round = round_;
    box_[static_cast<size_t>(rank)] = mine;
    if (++arrived_ == size_) {
      result_ = box_;
      arrived_ = 0;
      ++round_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return round_ != round; });
    }
    return result_;
  }

 private:
  int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> box_, result_;
  int arrived_ = 0;
  long round_ = 0;
};

class ThreadBootstrap final : public Bootstrap {
 public:
  ThreadBootstrap(ThreadGroup &g, int rank) : g_(g), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_.size(); }
  void broadcast(void *bytes, size_t n, int root) override {
    const auto all = g_.exchange(rank_, std::string(static_cast<const char *>(bytes), n));
    std::memcpy(bytes, all[static_cast<size_t>(root)].data(), n);
  }
  std::vector<std::string> allgatherv(const std::string &mine) override { return g_.exchange(rank_, mine); }
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override {
    const auto all = g_.exchange(rank_, std::string(static_cast<const char *>(send), n));
    if (rank_ != root) return;
    char *out = static_cast<char *>(recv);
    for (size_t r = 0; r < all.size(); ++r) {
      if (all[r].size() != counts[r]) throw std::logic_error("ThreadBootstrap::gatherv: counts disagree");
      std::memcpy(out, all[r].data(), counts[r]);
      out += counts[r];
    }
  }
  int all_min(int v) override {
    int m = v;
    for (const auto &s : g_.exchange(rank_, std::to_string(v))) m = std::min(m, std::stoi(s));
    return m;
  }
  void barrier() override { g_.exchange(rank_, std::string()); }

 private:
  ThreadGroup &g_;
  int rank_;
};

}  // namespace smp::comm::testing
