// NCCL communicator creation (comm/nccl/nccl_comm.h) with a fake NCCL, one
// thread per rank: one id from member 0 for the whole group, only the
// group's members involved, all-or-nobody agreement on failure (shared GPU,
// id failure, one rank's init failing or hanging), asynchronous errors and
// aborts reported instead of hanging.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "comm/nccl/nccl_comm.h"
#include "fake_nccl.h"
#include "thread_bootstrap.h"

namespace smp::comm::nccl {
namespace {

using testing::FakeNccl;
using testing::FakeWorld;
using comm::testing::ThreadBootstrap;
using comm::testing::ThreadGroup;

struct Member {
  std::unique_ptr<FakeNccl> api;
  std::unique_ptr<ThreadBootstrap> boot;
  std::unique_ptr<NcclComm> comm;
  void *got = nullptr;
};

// A group of n ranks; keys[r] is rank r's GPU.
struct Group {
  FakeWorld &world;
  ThreadGroup meet;
  std::vector<Member> m;
  Group(FakeWorld &w, const std::vector<std::string> &keys, double timeout = 0)
      : world(w), meet(static_cast<int>(keys.size())), m(keys.size()) {
    for (size_t r = 0; r < keys.size(); ++r) {
      m[r].api = std::make_unique<FakeNccl>(w, keys[r]);
      m[r].boot = std::make_unique<ThreadBootstrap>(meet, static_cast<int>(r));
      m[r].comm = std::make_unique<NcclComm>(*m[r].api, *m[r].boot, timeout);
    }
  }
  // Every member calls get() on its own thread.
  void create_all() {
    std::vector<std::thread> t;
    for (auto &x : m) t.emplace_back([&x] { x.got = x.comm->get(); });
    for (auto &x : t) x.join();
  }
};

std::vector<std::string> distinct_gpus(int n) {
  std::vector<std::string> k;
  for (int r = 0; r < n; ++r) k.push_back("host/gpu" + std::to_string(r));
  return k;
}

class NcclCreate : public ::testing::TestWithParam<int> {};

TEST_P(NcclCreate, OneIdFromMemberZeroEveryRankJoinsIt) {
  const int n = GetParam();
  FakeWorld w;
  {
    Group g(w, distinct_gpus(n));
    g.create_all();
    EXPECT_EQ(w.ids_made, 1);
    ASSERT_EQ(w.joined.size(), 1u);
    EXPECT_EQ(static_cast<int>(w.joined.begin()->second.size()), n);
    for (int r = 0; r < n; ++r) {
      ASSERT_NE(g.m[r].got, nullptr) << g.m[r].comm->refusal();
      const auto *c = static_cast<const testing::FakeComm *>(g.m[r].got);
      EXPECT_EQ(c->rank, r);
      EXPECT_EQ(c->nranks, n);
      EXPECT_EQ(c->id, w.joined.begin()->first);
    }
    // Later calls reuse it: no new id, no new init.
    for (auto &x : g.m) EXPECT_EQ(x.comm->get(), x.got);
    EXPECT_EQ(w.ids_made, 1);
    EXPECT_EQ(w.inits, n);
  }
  EXPECT_EQ(w.destroys, n);
  EXPECT_TRUE(w.live.empty());
}

// (Two ranks at least, so not one of the parameterized group sizes.)
TEST(NcclCreateShared, SharedGpuIsDeclinedByEveryMemberWithoutCallingNccl) {
  for (int n = 2; n <= 4; ++n) {
    auto keys = distinct_gpus(n);
    keys[n - 1] = keys[0];
    FakeWorld w;
    Group g(w, keys);
    g.create_all();
    for (auto &x : g.m) {
      EXPECT_EQ(x.got, nullptr);
      EXPECT_NE(x.comm->refusal().find("share GPU host/gpu0"), std::string::npos) << x.comm->refusal();
    }
    EXPECT_EQ(w.ids_made, 0);
    EXPECT_EQ(w.inits, 0);
  }
}

TEST_P(NcclCreate, OneRankFailingInitMakesEveryMemberDecline) {
  const int n = GetParam();
  FakeWorld w;
  Group g(w, distinct_gpus(n));
  g.m[n / 2].api->fail_init = true;
  g.create_all();
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(g.m[r].got, nullptr);
    const std::string want = r == n / 2 ? "ncclCommInitRank failed: fake NCCL error 3"
                                        : "ncclCommInitRank failed on another rank";
    EXPECT_NE(g.m[r].comm->refusal().find(want), std::string::npos) << g.m[r].comm->refusal();
  }
  EXPECT_TRUE(w.live.empty()) << "the ranks that succeeded freed their communicators";
  EXPECT_EQ(w.destroys, n - 1);
}

TEST_P(NcclCreate, IdFailureOnMemberZeroIsSeenByAll) {
  const int n = GetParam();
  FakeWorld w;
  Group g(w, distinct_gpus(n));
  g.m[0].api->fail_unique_id = true;
  g.create_all();
  for (auto &x : g.m) {
    EXPECT_EQ(x.got, nullptr);
    EXPECT_NE(x.comm->refusal().find("ncclGetUniqueId failed"), std::string::npos);
  }
  EXPECT_EQ(w.inits, 0);
}

TEST_P(NcclCreate, NonBlockingInitIsPolledToCompletion) {
  const int n = GetParam();
  FakeWorld w;
  Group g(w, distinct_gpus(n));
  for (auto &x : g.m) x.api->init_polls = 5;
  g.create_all();
  for (auto &x : g.m) {
    ASSERT_NE(x.got, nullptr);
    EXPECT_EQ(static_cast<const testing::FakeComm *>(x.got)->state, kNcclSuccess);
  }
}

TEST_P(NcclCreate, InitThatNeverCompletesTimesOutAndEveryoneDeclines) {
  const int n = GetParam();
  FakeWorld w;
  Group g(w, distinct_gpus(n), /*timeout=*/0.05);
  g.m[0].api->init_polls = -1;  // rank 0's init hangs
  g.create_all();
  for (auto &x : g.m) EXPECT_EQ(x.got, nullptr);
  EXPECT_NE(g.m[0].comm->refusal().find("timeout"), std::string::npos) << g.m[0].comm->refusal();
  EXPECT_EQ(w.aborts, 1) << "the hung creation is aborted";
  EXPECT_TRUE(w.live.empty());
}

INSTANTIATE_TEST_SUITE_P(Ranks, NcclCreate, ::testing::Values(1, 2, 3, 4));

// Two disjoint groups of a 4-rank world: only group A's members create, and
// they finish although group B's ranks never call anything.
TEST(NcclCreateGroups, OnlyTheGroupsMembersTakePart) {
  FakeWorld w;
  Group a(w, {"h/gpu0", "h/gpu1"});
  Group b(w, {"h/gpu2", "h/gpu3"});
  a.create_all();
  for (auto &x : a.m) EXPECT_NE(x.got, nullptr);
  EXPECT_EQ(w.ids_made, 1);
  EXPECT_EQ(w.inits, 2);
  for (auto &x : b.m) EXPECT_FALSE(x.comm->created());
}

TEST(NcclHealth, AsyncErrorAbortsOnceAndEveryLaterCallReportsIt) {
  FakeWorld w;
  {
    Group g(w, distinct_gpus(1));
    g.create_all();
    NcclComm &c = *g.m[0].comm;
    EXPECT_NO_THROW(c.check_async("allreduce"));
    g.m[0].api->set_async_error(g.m[0].got, 6);  // ncclRemoteError: a peer failed
    try {
      c.check_async("allreduce");
      FAIL() << "no error";
    } catch (const Error &e) {
      EXPECT_EQ(e.status(), Status::PeerFailed);
      EXPECT_NE(std::string(e.what()).find("fake NCCL error 6"), std::string::npos) << e.what();
    }
    EXPECT_EQ(w.aborts, 1);
    EXPECT_THROW(c.get(), Error);
    EXPECT_THROW(c.check_async("broadcast"), Error);
    c.abort(Status::Timeout, "again");  // already aborted: no second abort
    EXPECT_EQ(w.aborts, 1);
  }
  EXPECT_EQ(w.destroys, 0) << "an aborted communicator is not destroyed again";
  EXPECT_TRUE(w.live.empty());
}

TEST(NcclHealth, HangTimeoutAbortReportsTimeout) {
  FakeWorld w;
  Group g(w, distinct_gpus(1));
  g.create_all();
  g.m[0].comm->abort(Status::Timeout, "allreduce still pending after 5 s");
  EXPECT_EQ(w.aborts, 1);
  try {
    g.m[0].comm->get();
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::Timeout);
    EXPECT_STREQ(e.what(), "allreduce still pending after 5 s");
  }
}

}  // namespace
}  // namespace smp::comm::nccl
