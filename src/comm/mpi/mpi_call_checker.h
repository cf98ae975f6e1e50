// The CallChecker over MPI: a duplicate of MPI_COMM_WORLD carries every
// check message (one tag), so they never match the program's traffic or a
// group's. Messages a waiting thread is not looking for (another thread's
// call, a notice for a call not started yet, leftovers of a failed call)
// wait in a per-source stash; leftovers are recognized by their call
// number and dropped. A waiting thread takes whatever arrives from any
// source, so a notice reaches the call it fails whoever sends it.
#pragma once

#include <mpi.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "comm/call_checker.h"

namespace smp::comm::mpi {

class MpiCallChecker final : public CallChecker {
 public:
  // Collective over MPI_COMM_WORLD (duplicates it).
  MpiCallChecker(const topo::Layout &layout, int world_rank);
  ~MpiCallChecker() override;
  MpiCallChecker(const MpiCallChecker &) = delete;
  MpiCallChecker &operator=(const MpiCallChecker &) = delete;

  std::vector<CallDesc> exchange(topo::Group group, const std::vector<int> &members, int rank,
                                 const CallDesc &mine) override;

  // One message; words travel as int64.
  struct Wire {
    int64_t type = 0;   // kDesc or kNotice
    int64_t group = 0;  // desc: the group named; notice: the group of the call it fails
    int64_t seq = 0;    // desc: the sender's call number on it; notice: the failed call's
    // desc: the sender's call; notice: the two calls that contradict
    // each other (rank, group, call number, arguments).
    int64_t rank_a = -1, group_a = 0, seq_a = 0;
    CallDesc a;
    int64_t rank_b = -1, group_b = 0, seq_b = 0;
    CallDesc b;
  };

 private:
  CallDesc take(int source, size_t group, int64_t seq, const CallDesc &mine,
                const std::vector<int> &members);
  [[noreturn]] void mismatch(const Wire &found, size_t group, int64_t seq, const CallDesc &mine,
                             const std::vector<int> &members);
  bool stale(const Wire &x) const;
  std::optional<Wire> notice_for(size_t group, int64_t seq);
  std::string notice_text(const Wire &n) const;
  void skip_other_call(const Wire &n, size_t group, int64_t seq);  // with mu_ held
  void post(const Wire &w, const std::vector<int> &to);  // one Isend each, kept until done
  void reap_sends();                                      // with mu_ held

  topo::Layout layout_;
  int me_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  std::mutex mu_;
  std::map<int, std::deque<Wire>> stash_;  // by source world rank; no empty deques
  // By group value (layout groups and created ones, comm/groups.h).
  std::map<int64_t, int64_t> next_;    // calls started per group
  std::map<int64_t, int64_t> active_;  // call in progress, -1 or absent: none
  int64_t active(int64_t g) const {
    auto it = active_.find(g);
    return it == active_.end() ? -1 : it->second;
  }
  int64_t next(int64_t g) const {
    auto it = next_.find(g);
    return it == next_.end() ? 0 : it->second;
  }
  // Members of `rank`'s group g (layout or created), and the group in words.
  std::vector<int> members_of(int64_t g, int rank) const;
  std::string describe(int64_t g, int rank) const;
  struct Sent {
    std::unique_ptr<Wire> wire;
    std::vector<MPI_Request> requests;
  };
  std::deque<Sent> sent_;
};

}  // namespace smp::comm::mpi
