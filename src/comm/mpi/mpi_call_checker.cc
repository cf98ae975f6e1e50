#include "comm/mpi/mpi_call_checker.h"

#include <algorithm>
#include <optional>
#include <thread>

#include "comm/groups.h"
#include "comm/mpi/mpi_util.h"
#include "common/error.h"

namespace smp::comm::mpi {

namespace {

constexpr int64_t kDesc = 1, kNotice = 2;
constexpr int kTag = 0;
constexpr int kWords = static_cast<int>(sizeof(MpiCallChecker::Wire) / sizeof(int64_t));
static_assert(sizeof(MpiCallChecker::Wire) % sizeof(int64_t) == 0, "Wire is whole int64 words");

topo::Group as_group(int64_t g) { return static_cast<topo::Group>(g); }
const char *name_of(int64_t g) { return group_label(as_group(g)); }

// Clears the in-progress mark of a call however it ends.
struct ActiveCall {
  std::mutex &mu;
  int64_t &slot;
  ~ActiveCall() {
    std::lock_guard<std::mutex> lock(mu);
    slot = -1;
  }
};

}  // namespace

MpiCallChecker::MpiCallChecker(const topo::Layout &layout, int world_rank)
    : layout_(layout), me_(world_rank) {
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "smp_init: MPI_Comm_dup (SMP_CHECK channel)");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

MpiCallChecker::~MpiCallChecker() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // Notices to ranks that never came to read them may still be in flight:
  // let MPI finish them on its own.
  for (Sent &s : sent_)
    for (MPI_Request &r : s.requests)
      if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
  MPI_Comm_free(&comm_);
}

void MpiCallChecker::reap_sends() {
  while (!sent_.empty()) {
    int done = 0;
    Sent &s = sent_.front();
    MPI_Testall(static_cast<int>(s.requests.size()), s.requests.data(), &done, MPI_STATUSES_IGNORE);
    if (!done) return;
    sent_.pop_front();
  }
}

void MpiCallChecker::post(const Wire &w, const std::vector<int> &to) {
  if (to.empty()) return;
  Sent s;
  s.wire = std::make_unique<Wire>(w);
  s.requests.resize(to.size(), MPI_REQUEST_NULL);
  for (size_t i = 0; i < to.size(); ++i)
    check_mpi(MPI_Isend(s.wire.get(), kWords, MPI_INT64_T, to[i], kTag, comm_, &s.requests[i]),
              "SMP_CHECK: MPI_Isend");
  std::lock_guard<std::mutex> lock(mu_);
  sent_.push_back(std::move(s));
}

std::vector<CallDesc> MpiCallChecker::exchange(topo::Group group, const std::vector<int> &members,
                                               int rank, const CallDesc &mine) {
  const size_t g = static_cast<size_t>(group);
  int64_t seq = 0;
  int64_t *slot = nullptr;  // a map node: stays put while others are added
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap_sends();
    seq = next_[static_cast<int64_t>(g)]++;
    slot = &active_[static_cast<int64_t>(g)];
    *slot = seq;
  }
  ActiveCall in_progress{mu_, *slot};
  Wire w;
  w.type = kDesc;
  w.group = static_cast<int64_t>(g);
  w.seq = seq;
  w.rank_a = me_;
  w.group_a = w.group;
  w.seq_a = seq;
  w.a = mine;
  std::vector<int> others;
  for (int m : members)
    if (m != me_) others.push_back(m);
  post(w, others);
  std::vector<CallDesc> all(members.size());
  for (size_t r = 0; r < members.size(); ++r)
    all[r] = static_cast<int>(r) == rank ? mine : take(members[r], g, seq, mine, members);
  return all;
}

// The next descriptor of call (group, seq) from `source`, or the failure
// that replaces it. Polls every source, so a notice that fails this call
// is seen whoever sends it.
CallDesc MpiCallChecker::take(int source, size_t group, int64_t seq, const CallDesc &mine,
                              const std::vector<int> &members) {
  for (int spins = 0;; ++spins) {
    std::optional<Wire> bad;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stash_.empty()) {
        if (std::optional<Wire> n = notice_for(group, seq)) {
          skip_other_call(*n, group, seq);
          fail(Status::PeerFailed, notice_text(*n));
        }
        auto found = stash_.find(source);
        if (found != stash_.end()) {
          auto &q = found->second;
          for (auto it = q.begin(); it != q.end(); ++it) {
            const Wire &x = *it;
            const size_t k = static_cast<size_t>(x.group);
            if (x.type == kNotice) continue;  // for a call not started yet, or another thread's
            if (k == group && x.seq == seq && x.a.members == mine.members) {
              const CallDesc d = x.a;
              q.erase(it);
              if (q.empty()) stash_.erase(found);
              return d;
            }
            if (k != group && active(static_cast<int64_t>(k)) >= 0) continue;  // another thread's call on that group
            // Another group, other members, or a call number ahead of ours.
            if (k != group) next_[x.group] = std::max(next(x.group), x.seq + 1);  // that call fails here too
            bad = x;
            q.erase(it);
            if (q.empty()) stash_.erase(found);
            break;
          }
        }
      }
    }
    if (bad) mismatch(*bad, group, seq, mine, members);
    int flag = 0;
    MPI_Message handle;
    MPI_Status status;
    check_mpi(MPI_Improbe(MPI_ANY_SOURCE, kTag, comm_, &flag, &handle, &status), "SMP_CHECK: MPI_Improbe");
    if (flag) {
      Wire x;
      check_mpi(MPI_Mrecv(&x, kWords, MPI_INT64_T, &handle, MPI_STATUS_IGNORE), "SMP_CHECK: MPI_Mrecv");
      std::lock_guard<std::mutex> lock(mu_);
      if (x.group >= 0 && !stale(x))
        stash_[status.MPI_SOURCE].push_back(x);
      spins = 0;
    } else if (spins > 16) {
      std::this_thread::yield();  // ranks may outnumber cores
    }
  }
}

// With mu_ held. From a call this rank already finished (a failed call's
// leftovers): the group's calls in progress or started come after it.
bool MpiCallChecker::stale(const Wire &x) const {
  const size_t k = static_cast<size_t>(x.group);
  const int64_t g = static_cast<int64_t>(k);
  return x.seq < (active(g) >= 0 ? active(g) : next(g));
}

// With mu_ held: a notice (from anyone) that fails call (group, seq);
// drops the stale messages it walks past.
std::optional<MpiCallChecker::Wire> MpiCallChecker::notice_for(size_t group, int64_t seq) {
  for (auto src = stash_.begin(); src != stash_.end();) {
    auto &q = src->second;
    for (auto it = q.begin(); it != q.end();) {
      if (stale(*it)) {
        it = q.erase(it);
      } else if (it->type == kNotice && static_cast<size_t>(it->group) == group && it->seq == seq) {
        const Wire n = *it;
        q.erase(it);
        return n;
      } else {
        ++it;
      }
    }
    src = q.empty() ? stash_.erase(src) : std::next(src);
  }
  return std::nullopt;
}

// `found` (from a member of this call) contradicts this call: fail both
// calls everywhere and here.
void MpiCallChecker::mismatch(const Wire &found, size_t group, int64_t seq, const CallDesc &mine,
                              const std::vector<int> &members) {
  const int other = static_cast<int>(found.rank_a);
  Wire n;
  n.type = kNotice;
  n.rank_a = me_;
  n.group_a = static_cast<int64_t>(group);
  n.seq_a = seq;
  n.a = mine;
  n.rank_b = other;
  n.group_b = found.group;
  n.seq_b = found.seq;
  n.b = found.a;
  auto others_of = [&](const std::vector<int> &ms) {
    std::vector<int> to;
    for (int m : ms)
      if (m != me_ && m != other) to.push_back(m);
    return to;
  };
  if (found.group != static_cast<int64_t>(group)) {
    // The other call's members wait for this rank; this call's members
    // wait for `other`. Both calls fail on all of them.
    n.group = found.group;
    n.seq = found.seq;
    post(n, others_of(members_of(found.group, other)));
  }
  n.group = static_cast<int64_t>(group);
  n.seq = seq;
  post(n, others_of(members));
  fail(Status::PeerFailed, notice_text(n));
}

// A notice failed call (group, seq) here. If this rank belongs to the
// group of the other call named (the one a member made instead), that call
// has failed on its side and will not come again: this rank's call number
// on that group moves past it, as the two parties' did, so later calls on
// it stay matched.
void MpiCallChecker::skip_other_call(const Wire &n, size_t group, int64_t seq) {
  auto skip = [&](int64_t rank, int64_t g, int64_t q) {
    if ((static_cast<size_t>(g) == group && q == seq) || g < 0) return;
    const std::vector<int> ms = members_of(g, static_cast<int>(rank));
    if (std::find(ms.begin(), ms.end(), me_) == ms.end()) return;
    next_[g] = std::max(next(g), q + 1);
  };
  skip(n.rank_a, n.group_a, n.seq_a);
  skip(n.rank_b, n.group_b, n.seq_b);
}

std::string MpiCallChecker::notice_text(const Wire &n) const {
  const int a = static_cast<int>(n.rank_a), b = static_cast<int>(n.rank_b);
  if (n.group_a == n.group_b && n.a.members == n.b.members)
    return "SMP_CHECK: ranks " + std::to_string(std::min(a, b)) + " and " + std::to_string(std::max(a, b)) +
           " are at different collectives on " + name_of(n.group_a) +
           " (an earlier mismatch left them out of step): one called " + describe_call(n.a) +
           ", the other " + describe_call(n.b);
  if (n.group_a == n.group_b) {
    const std::string g = name_of(n.group_a);
    return "SMP_CHECK: membership mismatch on " + g + ": rank " + std::to_string(a) + " sees " +
           describe(n.group_a, a) + ", rank " +
           std::to_string(b) + " a " + g +
           " of other members (the ranks' SMP_PP_SIZE / SMP_TP_SIZE / SMP_PLACEMENT differ)";
  }
  return group_mismatch_message(a, n.a, describe(n.group_a, a), b, n.b, describe(n.group_b, b));
}

std::vector<int> MpiCallChecker::members_of(int64_t g, int rank) const {
  return group_members_of(layout_, as_group(g), rank);
}

// "TP_GROUP [2, 3]"; a created group's name holds its members already.
std::string MpiCallChecker::describe(int64_t g, int rank) const {
  if (is_layout_group(as_group(g))) return describe_group(name_of(g), layout_.group_members(as_group(g), rank));
  return name_of(g);
}

}  // namespace smp::comm::mpi
