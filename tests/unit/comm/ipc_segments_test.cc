// The IPC segment setup (comm/ipc/segments.h) with one thread per rank and
// a fake shared memory that logs what every rank did: every member maps
// every peer's segment; the group declines together, with one reason and
// nothing left allocated or mapped, when keys differ, an allocation fails
// or a mapping fails; and no segment is freed while a peer still maps it
// (undefined in CUDA).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "comm/ipc/ipc_backend.h"
#include "comm/ipc/segments.h"
#include "thread_bootstrap.h"

namespace smp::comm::ipc {
namespace {

using comm::testing::ThreadBootstrap;
using comm::testing::ThreadGroup;

// What every rank did, in one log.
struct World {
  std::mutex mu;
  std::map<std::string, int> live;         // segment handle -> allocated (1) or freed (0)
  std::map<std::string, int> maps;         // segment handle -> mappings by peers right now
  std::map<std::string, int> owner;        // segment handle -> allocating rank
  std::vector<std::string> violations;     // frees while a peer still mapped the segment
  int allocations = 0, opens = 0;
};

class FakeMemory final : public SharedMemory {
 public:
  FakeMemory(World &w, int rank, std::string key) : w_(w), rank_(rank), key_(std::move(key)) {}
  bool fail_allocate = false, fail_open = false;

  std::string key(const void *) override { return key_; }
  void *allocate(size_t bytes, const void *, std::string *handle, std::string *error) override {
    if (fail_allocate) {
      *error = "no memory on rank " + std::to_string(rank_);
      return nullptr;
    }
    auto *p = new char[bytes];
    *handle = std::to_string(reinterpret_cast<uintptr_t>(p));
    std::lock_guard<std::mutex> lock(w_.mu);
    ++w_.allocations;
    w_.live[*handle] = 1;
    w_.owner[*handle] = rank_;
    return p;
  }
  void release(void *segment) noexcept override {
    const std::string h = std::to_string(reinterpret_cast<uintptr_t>(segment));
    std::lock_guard<std::mutex> lock(w_.mu);
    if (w_.maps[h] != 0) w_.violations.push_back("rank " + std::to_string(rank_) + " freed a mapped segment");
    w_.live[h] = 0;
    delete[] static_cast<char *>(segment);
  }
  const void *open(const std::string &handle, std::string *error) override {
    if (fail_open) {
      *error = "mapping refused";
      return nullptr;
    }
    std::lock_guard<std::mutex> lock(w_.mu);
    ++w_.opens;
    ++w_.maps[handle];
    return reinterpret_cast<const void *>(std::stoull(handle));
  }
  void close(const void *mapped) noexcept override {
    std::lock_guard<std::mutex> lock(w_.mu);
    --w_.maps[std::to_string(reinterpret_cast<uintptr_t>(mapped))];
  }
  void copy(void *, const void *, size_t, void *) override {}
  void reduce(void *, const void *const *, int, size_t, DType, ReduceOp, int, void *) override {}
  void synchronize(void *) override {}

 private:
  World &w_;
  int rank_;
  std::string key_;
};

struct Group {
  World w;
  ThreadGroup meet;
  std::vector<std::unique_ptr<FakeMemory>> mem;
  std::vector<std::unique_ptr<ThreadBootstrap>> boot;
  std::vector<std::optional<Segments>> segs;
  std::vector<std::string> refusal;

  explicit Group(const std::vector<std::string> &keys)
      : meet(static_cast<int>(keys.size())), segs(keys.size()), refusal(keys.size()) {
    for (size_t r = 0; r < keys.size(); ++r) {
      mem.push_back(std::make_unique<FakeMemory>(w, static_cast<int>(r), keys[r]));
      boot.push_back(std::make_unique<ThreadBootstrap>(meet, static_cast<int>(r)));
    }
  }
  size_t size() const { return mem.size(); }
  template <class F> void each(F f) {
    std::vector<std::thread> t;
    for (size_t r = 0; r < size(); ++r) t.emplace_back([&, r] { f(r); });
    for (auto &x : t) x.join();
  }
  void open_all() {
    each([&](size_t r) { segs[r] = open_segments(*boot[r], *mem[r], nullptr, 256, &refusal[r]); });
  }
  void close_all() {
    each([&](size_t r) { if (segs[r]) close_segments(*boot[r], *mem[r], *segs[r]); });
  }
  // Nothing allocated, nothing mapped, no segment freed under a peer.
  void expect_clean() {
    for (auto &[h, alive] : w.live) EXPECT_EQ(alive, 0) << "segment of rank " << w.owner[h] << " still allocated";
    for (auto &[h, n] : w.maps) EXPECT_EQ(n, 0) << "segment of rank " << w.owner[h] << " still mapped";
    EXPECT_TRUE(w.violations.empty()) << w.violations.front();
  }
  // Every member declined with the same reason, containing `why`.
  void expect_declined(const std::string &why) {
    for (size_t r = 0; r < size(); ++r) {
      EXPECT_FALSE(segs[r].has_value()) << "rank " << r;
      EXPECT_EQ(refusal[r], refusal[0]);
      EXPECT_NE(refusal[r].find(why), std::string::npos) << refusal[r];
    }
    expect_clean();
  }
};

std::vector<std::string> one_device(int n) { return std::vector<std::string>(static_cast<size_t>(n), "host/gpu0"); }

class IpcSetup : public ::testing::TestWithParam<int> {};

TEST_P(IpcSetup, EveryMemberMapsEveryPeersSegment) {
  const int n = GetParam();
  Group g(one_device(n));
  g.open_all();
  for (int r = 0; r < n; ++r) {
    ASSERT_TRUE(g.segs[r].has_value()) << g.refusal[r];
    EXPECT_TRUE(g.refusal[r].empty());
    EXPECT_EQ(g.segs[r]->bytes, 256u);
    ASSERT_EQ(g.segs[r]->member.size(), static_cast<size_t>(n));
    EXPECT_EQ(g.segs[r]->member[r], g.segs[r]->local);
    // Member p's segment as rank r sees it is p's own allocation.
    for (int p = 0; p < n; ++p) EXPECT_EQ(g.segs[r]->member[p], g.segs[p]->local) << r << " sees " << p;
  }
  EXPECT_EQ(g.w.allocations, n);
  EXPECT_EQ(g.w.opens, n * (n - 1));
  g.close_all();
  g.expect_clean();
}

TEST_P(IpcSetup, DifferentDevicesDeclineBeforeAllocating) {
  const int n = GetParam();
  auto keys = one_device(n);
  keys.back() = "host/gpu1";
  Group g(keys);
  g.open_all();
  g.expect_declined("ranks 0 and " + std::to_string(n - 1) + " of the group use different devices (host/gpu0, host/gpu1)");
  EXPECT_EQ(g.w.allocations, 0);
}

TEST_P(IpcSetup, OneFailedAllocationDeclinesTheGroup) {
  const int n = GetParam();
  Group g(one_device(n));
  g.mem[n / 2]->fail_allocate = true;
  g.open_all();
  g.expect_declined("rank " + std::to_string(n / 2) + " of the group could not allocate its segment: no memory on rank " +
                    std::to_string(n / 2));
  EXPECT_EQ(g.w.opens, 0);
  EXPECT_EQ(g.w.allocations, n - 1);
}

TEST_P(IpcSetup, OneFailedMappingDeclinesTheGroupAndUnmapsEverything) {
  const int n = GetParam();
  Group g(one_device(n));
  g.mem[n - 1]->fail_open = true;
  g.open_all();
  g.expect_declined("rank " + std::to_string(n - 1) + " of the group could not map a peer's segment: opening rank 0's segment: mapping refused");
  EXPECT_EQ(g.w.opens, (n - 1) * (n - 1));  // every other member mapped every peer
}

INSTANTIATE_TEST_SUITE_P(Sizes, IpcSetup, ::testing::Values(2, 3, 4, 7));

TEST(IpcSetupAlone, OneRankHasNothingToShare) {
  Group g(one_device(1));
  g.open_all();
  g.expect_declined("a group of one rank has nothing to share");
  EXPECT_EQ(g.w.allocations, 0);
}

}  // namespace
}  // namespace smp::comm::ipc

// What the measured step time makes of kAutoMinBytes: members that take
// turns on the GPU (0.28 ms a step on an H200) keep small calls on the
// staged path; under MPS (13 us) or alone (10 us) every call comes here.
TEST(IpcMinBytes, TurnsKeepSmallCallsStaged) {
  using namespace smp::comm::ipc;
  EXPECT_EQ(min_bytes_for_step(283), kTurnsMinBytes);
  EXPECT_EQ(min_bytes_for_step(kTurnMicros + 1), kTurnsMinBytes);
  EXPECT_EQ(min_bytes_for_step(kTurnMicros), 0u);
  EXPECT_EQ(min_bytes_for_step(13), 0u);
  EXPECT_EQ(min_bytes_for_step(0), 0u);
}
