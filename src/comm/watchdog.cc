#include "comm/watchdog.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <unordered_map>

namespace smp::comm {

// One per thread that ever ran an operation; never freed (threads are few)
// so the watchdog can read a slot whose thread has exited.
struct Slot {
  std::atomic<uint64_t> seq{0};  // odd while an operation is pending
  std::atomic<const char *> op{""};
  std::atomic<int> group{0}, peer{-1}, root{-1}, tag{-1};
  std::atomic<uint64_t> count{0};
};

namespace {

std::atomic<bool> g_enabled{false};
std::mutex g_slots_mu;
std::deque<Slot> g_slots;  // deque: growing it never moves a slot

Slot *my_slot() {
  thread_local Slot *slot = nullptr;
  if (slot == nullptr) {
    std::lock_guard<std::mutex> lock(g_slots_mu);
    g_slots.emplace_back();
    slot = &g_slots.back();
  }
  return slot;
}

}  // namespace

std::string timeout_message(int world_rank, const OpInfo &info, double waited, double timeout) {
  auto field = [](int v) { return v < 0 ? std::string("-") : std::to_string(v); };
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "smp: rank %d: %s on %s (peer %s, root %s, tag %s, count %zu) has waited %.1f s, "
                "longer than SMP_TIMEOUT=%g s; aborting the job",
                world_rank, info.op, topo::group_name(info.group), field(info.peer).c_str(),
                field(info.root).c_str(), field(info.tag).c_str(), info.count, waited, timeout);
  return buf;
}

OpScope::OpScope(const OpInfo &info) {
  if (!g_enabled.load(std::memory_order_relaxed)) return;
  slot_ = my_slot();
  Slot &s = *slot_;
  s.op.store(info.op, std::memory_order_relaxed);
  s.group.store(static_cast<int>(info.group), std::memory_order_relaxed);
  s.peer.store(info.peer, std::memory_order_relaxed);
  s.root.store(info.root, std::memory_order_relaxed);
  s.tag.store(info.tag, std::memory_order_relaxed);
  s.count.store(info.count, std::memory_order_relaxed);
  s.seq.store(s.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

OpScope::~OpScope() {
  if (slot_ == nullptr) return;
  slot_->seq.store(slot_->seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

Watchdog::Watchdog(double timeout_seconds, int world_rank)
    : timeout_(timeout_seconds), world_rank_(world_rank) {
  if (timeout_ <= 0) return;
  g_enabled.store(true);
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  g_enabled.store(false);
}

void Watchdog::run() {
  using Clock = std::chrono::steady_clock;
  // Poll often enough that the report comes within ~10% of the timeout.
  const auto period = std::chrono::duration<double>(std::min(0.1, timeout_ / 10));
  struct Seen { uint64_t seq; Clock::time_point since; };
  std::unordered_map<const Slot *, Seen> seen;
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    const auto now = Clock::now();
    std::lock_guard<std::mutex> slots_lock(g_slots_mu);
    for (const Slot &s : g_slots) {
      const uint64_t seq = s.seq.load(std::memory_order_acquire);
      if ((seq & 1) == 0) continue;  // idle
      auto it = seen.find(&s);
      if (it == seen.end() || it->second.seq != seq) {
        seen[&s] = {seq, now};
        continue;
      }
      const double waited = std::chrono::duration<double>(now - it->second.since).count();
      if (waited < timeout_) continue;
      OpInfo info;
      info.op = s.op.load(std::memory_order_relaxed);
      info.group = static_cast<topo::Group>(s.group.load(std::memory_order_relaxed));
      info.peer = s.peer.load(std::memory_order_relaxed);
      info.root = s.root.load(std::memory_order_relaxed);
      info.tag = s.tag.load(std::memory_order_relaxed);
      info.count = s.count.load(std::memory_order_relaxed);
      // Still the same operation? (the fields were written before seq)
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_acquire) != seq) continue;
      std::fprintf(stderr, "%s\n", timeout_message(world_rank_, info, waited, timeout_).c_str());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
  }
}

}  // namespace smp::comm
