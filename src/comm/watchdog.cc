#include "comm/watchdog.h"

#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <unordered_map>
#include <vector>

#include "comm/groups.h"

namespace smp::comm {

// One per thread that ever ran an operation; never freed (threads are few)
// so the watchdog can read a slot whose thread has exited.
struct Slot {
  std::atomic<uint64_t> seq{0};  // odd while an operation is pending
  std::atomic<const char *> op{""};
  std::atomic<int> group{0}, peer{-1}, root{-1}, tag{-1};
  std::atomic<uint64_t> count{0};
  std::atomic<double> timeout{-1};
  // The user's call (CallScope): depth is the owner thread's alone; the
  // label is read by the watchdog thread, under call_mu.
  int call_depth = 0;
  mutable std::mutex call_mu;
  std::string call;
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

std::string timeout_message(int world_rank, const OpInfo &info, double waited, double timeout,
                            const std::string &missing, const std::string &call) {
  auto field = [](int v) { return v < 0 ? std::string("-") : std::to_string(v); };
  char limit[96];
  if (info.timeout >= 0)
    std::snprintf(limit, sizeof limit, "longer than its group's timeout of %g s (smp_group_set_timeout)", timeout);
  else
    std::snprintf(limit, sizeof limit, "longer than SMP_TIMEOUT=%g s", timeout);
  char buf[768];
  std::snprintf(buf, sizeof buf, "%s on %s (peer %s, root %s, tag %s, count %zu) has waited %.1f s, %s; ",
                info.op, group_label(info.group), field(info.peer).c_str(), field(info.root).c_str(),
                field(info.tag).c_str(), info.count, waited, limit);
  return "smp: rank " + std::to_string(world_rank) + ": " + (call.empty() ? "" : call + ": ") + buf +
         (missing.empty() ? "" : missing + "; ") + "aborting the job";
}

std::string hang_report_line(int world_rank, const std::string &waits_in, const std::vector<Absent> &absent) {
  auto clean = [](std::string t) {
    for (char &c : t)
      if (c == '\t' || c == '\n' || c == '\r') c = ' ';
    return t;
  };
  std::string line = "smp-hang\t" + std::to_string(world_rank) + "\t" + clean(waits_in);
  for (const Absent &a : absent) line += "\t" + std::to_string(a.rank) + "\t" + clean(a.state);
  return line;
}

namespace {

constexpr int kTagQuery = 1, kTagReply = 2;

// What a rank waits in, as its watchdog answers a query.
struct Reply {
  int32_t pending_on[topo::kAllGroups.size()] = {};  // operations pending per layout group
  int32_t pending_user[16] = {};                       // created groups with one pending (0: none)
  char what[256] = {};                                 // the first, in words
};

bool pending_on(const Reply &r, topo::Group g) {
  if (is_layout_group(g)) return r.pending_on[static_cast<int>(g)] > 0;
  for (int32_t u : r.pending_user)
    if (u == static_cast<int32_t>(g)) return true;
  return false;
}

}  // namespace

void Watchdog::serve_queries() {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kTagQuery, control_, &flag, &st) != MPI_SUCCESS || !flag) return;
    int dummy = 0;
    MPI_Recv(&dummy, 1, MPI_INT, st.MPI_SOURCE, kTagQuery, control_, MPI_STATUS_IGNORE);
    Reply r;
    {
      std::lock_guard<std::mutex> lock(g_slots_mu);
      for (const Slot &s : g_slots) {
        if ((s.seq.load(std::memory_order_acquire) & 1) == 0) continue;
        const int g = s.group.load(std::memory_order_relaxed);
        const bool first = r.what[0] == 0;
        if (is_layout_group(static_cast<topo::Group>(g))) {
          ++r.pending_on[g];
        } else if (is_user_group(static_cast<topo::Group>(g))) {
          for (int32_t &u : r.pending_user)
            if (u == 0 || u == g) {
              u = g;
              break;
            }
        } else {
          continue;
        }
        if (first) {
          std::string call;
          {
            std::lock_guard<std::mutex> call_lock(s.call_mu);
            call = s.call;
          }
          std::snprintf(r.what, sizeof r.what, "%s on %s%s%s", s.op.load(std::memory_order_relaxed),
                        group_label(static_cast<topo::Group>(g)), call.empty() ? "" : " in ",
                        call.c_str());
        }
      }
    }
    MPI_Send(&r, sizeof r, MPI_BYTE, st.MPI_SOURCE, kTagReply, control_);
  }
}

// "not arrived: rank 2 (waiting in no smp operation), ..." for a
// collective; for a point-to-point operation what the peer is doing.
std::string Watchdog::ask_members(const OpInfo &info, std::vector<Absent> *absent) {
  if (control_ == MPI_COMM_NULL) return "";
  const std::vector<int> members = group_members_of(layout_, info.group, world_rank_);
  if (members.empty()) return "";  // a created group destroyed meanwhile
  std::vector<int> ask;
  if (info.peer >= 0 && static_cast<size_t>(info.peer) < members.size())
    ask.push_back(members[static_cast<size_t>(info.peer)]);
  else
    for (int m : members)
      if (m != world_rank_) ask.push_back(m);
  std::vector<MPI_Request> reqs(ask.size(), MPI_REQUEST_NULL);
  int dummy = 0;
  for (size_t i = 0; i < ask.size(); ++i)
    MPI_Isend(&dummy, 1, MPI_INT, ask[i], kTagQuery, control_, &reqs[i]);
  std::unordered_map<int, Reply> replies;
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(1000);
  while (replies.size() < ask.size() && Clock::now() < deadline) {
    serve_queries();  // others may be asking this rank at the same time
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagReply, control_, &flag, &st);
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    Reply r;
    MPI_Recv(&r, sizeof r, MPI_BYTE, st.MPI_SOURCE, kTagReply, control_, MPI_STATUS_IGNORE);
    r.what[sizeof r.what - 1] = 0;
    replies[st.MPI_SOURCE] = r;
  }
  for (MPI_Request &q : reqs)
    if (q != MPI_REQUEST_NULL) MPI_Request_free(&q);
  auto state = [&](int m) {
    auto it = replies.find(m);
    if (it == replies.end()) return std::string("no answer: stuck outside smp or dead");
    return it->second.what[0] ? "waiting in " + std::string(it->second.what) : std::string("in no smp operation");
  };
  if (info.peer >= 0 && !ask.empty()) {
    absent->push_back({ask[0], state(ask[0])});
    return "peer is rank " + std::to_string(ask[0]) + " (" + state(ask[0]) + ")";
  }
  std::string missing;
  for (int m : ask) {
    auto it = replies.find(m);
    if (it != replies.end() && pending_on(it->second, info.group)) continue;  // arrived
    absent->push_back({m, state(m)});
    missing += (missing.empty() ? "" : ", ") + ("rank " + std::to_string(m)) + " (" + state(m) + ")";
  }
  return missing.empty() ? "every member is in an operation on " + std::string(group_label(info.group))
                         : "not arrived: " + missing;
}

// One write of one line with O_APPEND: lines of ranks that fire at once
// do not interleave.
void Watchdog::append_report(const std::string &line) {
  const int fd = ::open(report_path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) return;  // the report is a courtesy; the line on stderr stands
  const std::string text = line + "\n";
  [[maybe_unused]] const ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
}

// Keep answering for a moment, so that every rank waiting on this one
// hears what it waits in and prints its own line; then end the job.
void Watchdog::abort_after_grace() {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (control_ != MPI_COMM_NULL && std::chrono::steady_clock::now() < end) {
    serve_queries();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  MPI_Abort(MPI_COMM_WORLD, 1);
}

bool CallScope::watching() { return g_enabled.load(std::memory_order_relaxed); }

void CallScope::enter(std::string label) {
  slot_ = my_slot();
  if (slot_->call_depth++ > 0) return;  // inside another user call: keep it
  std::lock_guard<std::mutex> lock(slot_->call_mu);
  slot_->call = std::move(label);
}

void CallScope::leave() {
  if (--slot_->call_depth > 0) return;
  std::lock_guard<std::mutex> lock(slot_->call_mu);
  slot_->call.clear();
}

std::string CallScope::current() {
  if (!watching()) return "";
  Slot *s = my_slot();
  std::lock_guard<std::mutex> lock(s->call_mu);
  return s->call;
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
  s.timeout.store(info.timeout, std::memory_order_relaxed);
  s.seq.store(s.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

OpScope::~OpScope() {
  if (slot_ == nullptr) return;
  slot_->seq.store(slot_->seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

Watchdog::Watchdog(double timeout_seconds, int world_rank, const topo::Layout &layout, MPI_Comm control)
    : timeout_(timeout_seconds), shortest_(timeout_seconds), world_rank_(world_rank), layout_(layout),
      control_(control) {
  if (const char *p = std::getenv("SMP_HANG_REPORT"); p != nullptr && *p != '\0') report_path_ = p;
  if (timeout_ > 0) watch_group(timeout_);
}

void Watchdog::watch_group(double seconds) {
  if (seconds <= 0) return;
  double cur = shortest_.load();
  while ((cur <= 0 || seconds < cur) && !shortest_.compare_exchange_weak(cur, seconds)) {
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  g_enabled.store(true);
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    g_enabled.store(false);
  }
  if (control_ != MPI_COMM_NULL) MPI_Comm_free(&control_);
}

void Watchdog::run() {
  using Clock = std::chrono::steady_clock;
  // Poll often enough that the report comes within ~10% of the timeout.
  auto period = [this] { return std::chrono::duration<double>(std::min(0.1, shortest_.load() / 10)); };
  struct Seen { uint64_t seq; Clock::time_point since; };
  std::unordered_map<const Slot *, Seen> seen;
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, period(), [this] { return stop_; })) {
    if (control_ != MPI_COMM_NULL) serve_queries();
    const auto now = Clock::now();
    bool fired = false;
    OpInfo info;
    std::string call;
    double waited = 0, limit = 0;
    std::unique_lock<std::mutex> slots_lock(g_slots_mu);
    for (const Slot &s : g_slots) {
      const uint64_t seq = s.seq.load(std::memory_order_acquire);
      if ((seq & 1) == 0) continue;  // idle
      auto it = seen.find(&s);
      if (it == seen.end() || it->second.seq != seq) {
        seen[&s] = {seq, now};
        continue;
      }
      waited = std::chrono::duration<double>(now - it->second.since).count();
      const double own = s.timeout.load(std::memory_order_relaxed);
      limit = own >= 0 ? own : timeout_;  // the group's, else SMP_TIMEOUT
      if (limit <= 0 || waited < limit) continue;
      info.op = s.op.load(std::memory_order_relaxed);
      info.group = static_cast<topo::Group>(s.group.load(std::memory_order_relaxed));
      info.peer = s.peer.load(std::memory_order_relaxed);
      info.root = s.root.load(std::memory_order_relaxed);
      info.tag = s.tag.load(std::memory_order_relaxed);
      info.count = s.count.load(std::memory_order_relaxed);
      info.timeout = own;
      // Still the same operation? (the fields were written before seq)
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_acquire) != seq) continue;
      {
        std::lock_guard<std::mutex> call_lock(s.call_mu);
        call = s.call;
      }
      fired = true;
      break;
    }
    slots_lock.unlock();
    if (!fired) continue;
    std::vector<Absent> absent;
    const std::string missing = ask_members(info, &absent);
    std::fprintf(stderr, "%s\n", timeout_message(world_rank_, info, waited, limit, missing, call).c_str());
    std::fflush(stderr);
    if (!report_path_.empty()) {
      const std::string waits_in =
          (call.empty() ? "" : call + ": ") + info.op + " on " + group_label(info.group);
      append_report(hang_report_line(world_rank_, waits_in, absent));
    }
    abort_after_grace();
  }
}

}  // namespace smp::comm
