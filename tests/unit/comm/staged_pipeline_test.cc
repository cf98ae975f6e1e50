// The staged backend's chunk pipeline with host memory standing in for
// device memory: a deferred copy engine (copies happen only when a wait
// covers them, so a missing wait gives wrong data) and a fake group backend
// whose results are recomputed here from the whole buffers. Sweeps group
// size x chunk size x count, in place and not, and checks the issue order
// that makes the copies overlap the transfers.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "comm/staged/host_copy_engine.h"
#include "comm/staged/pipeline.h"
#include "comm/staged/staged_backend.h"
#include "fake_group_backend.h"

namespace smp::comm::staged {
namespace {

using testing::FakeGroupBackend;

struct Rig {
  std::vector<std::string> trace;
  std::shared_ptr<HostCopyEngine> engine;
  FakeGroupBackend *fake = nullptr;
  std::unique_ptr<StagedBackend> staged;

  // chunk_elems of 8 bytes (0: kAutoChunk).
  Rig(int rank, int size, size_t chunk_elems, size_t device_reduce_min_bytes = 0) {
    auto log = [this](const std::string &s) { trace.push_back(s); };
    engine = std::make_shared<HostCopyEngine>(/*deferred=*/true, log);
    auto f = std::make_unique<FakeGroupBackend>(rank, size, log);
    fake = f.get();
    staged = std::make_unique<StagedBackend>(std::move(f), rank, size, engine, chunk_elems * 8, nullptr,
                                             device_reduce_min_bytes);
  }
  // Positions in the trace of the entries starting with `prefix`.
  std::vector<size_t> where(const std::string &prefix) const {
    std::vector<size_t> out;
    for (size_t i = 0; i < trace.size(); ++i)
      if (trace[i].rfind(prefix, 0) == 0) out.push_back(i);
    return out;
  }
};

std::vector<int64_t> random_values(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> d(-1000000, 1000000);
  std::vector<int64_t> v(n);
  for (auto &x : v) x = d(rng);
  return v;
}

size_t chunks(size_t count, size_t c) { return (count + c - 1) / c; }

// (group size, chunk elements, count)
class Staged : public ::testing::TestWithParam<std::tuple<int, size_t, size_t>> {
 protected:
  int S() const { return std::get<0>(GetParam()); }
  size_t C() const { return std::get<1>(GetParam()); }
  size_t N() const { return std::get<2>(GetParam()); }
  int rank() const { return S() - 1; }  // the last rank: its blocks are the far ones
  uint64_t seed() const { return S() * 1000003u + C() * 101u + N(); }
};

TEST_P(Staged, AllreduceEveryChunkLandsInPlace) {
  for (bool in_place : {false, true}) {
    Rig rig(rank(), S(), C());
    const auto src = random_values(N(), seed());
    std::vector<int64_t> send = src, recv(N(), -7);
    rig.staged->allreduce(send.data(), in_place ? send.data() : recv.data(), N(), DType::I64,
                          ReduceOp::Sum, nullptr);
    const auto &out = in_place ? send : recv;
    for (size_t i = 0; i < N(); ++i) {
      ASSERT_EQ(out[i], 3 * src[i] + 1) << "element " << i;
    }
    if (!in_place) {
      EXPECT_EQ(send, src);
    }
    EXPECT_EQ(rig.where("xfer").size(), chunks(N(), C()));
  }
}

// Reduce-scatter: block b goes to rank b, chunk by chunk, over the host
// backend's point-to-point; the pieces of this rank's block arrive the same
// way and the device (the engine's reduction) adds them to its own piece.
// Nothing is copied back to the device.
TEST_P(Staged, ReduceScatterSendsEachBlockToItsRankAndReducesOnTheDevice) {
  for (bool in_place : {false, true}) {
    Rig rig(rank(), S(), C());
    const auto src = random_values(N() * S(), seed());
    std::vector<std::vector<int64_t>> from(static_cast<size_t>(S()));  // peers' pieces of our block
    for (int b = 0; b < S(); ++b) {
      if (b == rank()) continue;
      from[b] = random_values(N(), seed() + 7 + static_cast<uint64_t>(b));
      rig.fake->inbox[{b, kExchangeTag}] = from[b];
    }
    std::vector<int64_t> send = src, recv(N(), -7);
    int64_t *out = in_place ? send.data() + static_cast<size_t>(rank()) * N() : recv.data();
    rig.staged->reduce_scatter(send.data(), out, N(), DType::I64, ReduceOp::Sum, nullptr);
    for (size_t i = 0; i < N(); ++i) {
      int64_t want = src[rank() * N() + i];
      for (int b = 0; b < S(); ++b)
        if (b != rank()) want += from[b][i];
      ASSERT_EQ(out[i], want) << "element " << i;
    }
    for (int b = 0; b < S(); ++b) {
      if (b == rank() || N() == 0) continue;
      const std::vector<int64_t> block(src.begin() + static_cast<std::ptrdiff_t>(b * N()),
                                       src.begin() + static_cast<std::ptrdiff_t>((b + 1) * N()));
      EXPECT_EQ((rig.fake->sent[{b, kExchangeTag}]), block) << "block " << b;
      EXPECT_TRUE((rig.fake->inbox[{b, kExchangeTag}].empty())) << "from " << b;
    }
    EXPECT_TRUE(rig.where("h2d").empty());
    EXPECT_TRUE(rig.where("xfer reduce_scatter").empty()) << "the host reduced";
    EXPECT_EQ(rig.where("reduce").size(), chunks(N(), C()));
    EXPECT_EQ(rig.where("d2h").size(), chunks(N(), C()) * static_cast<size_t>(S() - 1));
  }
}

// The reduce-scatter's overlap: chunk k+1's pieces are copied to the host
// before chunk k is exchanged, chunk k's reduction is issued before chunk
// k+1 is exchanged, a wait covers each chunk's copies before its exchange,
// and the call returns after its last reduction. One rank exchanges
// nothing.
TEST_P(Staged, ReduceScatterCopiesAndReductionsAreIssuedAroundEachExchange) {
  Rig rig(rank(), S(), C());
  for (int b = 0; b < S(); ++b)
    if (b != rank())
      rig.fake->inbox[{b, kExchangeTag}] = random_values(N(), seed() + static_cast<uint64_t>(b));
  std::vector<int64_t> send = random_values(N() * S(), seed()), recv(N());
  rig.staged->reduce_scatter(send.data(), recv.data(), N(), DType::I64, ReduceOp::Sum, nullptr);
  const size_t n = chunks(N(), C()), peers = static_cast<size_t>(S() - 1);
  const auto d2h = rig.where("d2h"), xfer = rig.where("xfer"), red = rig.where("reduce"),
             wait = rig.where("wait");
  ASSERT_EQ(d2h.size(), n * peers);
  ASSERT_EQ(xfer.size(), n * 2 * peers);  // a receive and a send per peer
  ASSERT_EQ(red.size(), n);
  if (peers == 0) return;  // one rank: its own piece, copied chunk by chunk
  for (size_t k = 0; k < n; ++k) {
    const size_t first_xfer = xfer[k * 2 * peers], last_xfer = xfer[(k + 1) * 2 * peers - 1];
    EXPECT_LT(d2h[(k + 1) * peers - 1], first_xfer);
    EXPECT_LT(last_xfer, red[k]);
    if (k + 1 < n) {
      EXPECT_LT(d2h[(k + 2) * peers - 1], first_xfer)
          << "chunk " << k + 1 << " is not copied during chunk " << k;
      EXPECT_LT(red[k], xfer[(k + 1) * 2 * peers]) << "chunk " << k << " is not reduced during chunk " << k + 1;
    }
    bool waited = false;
    for (size_t w : wait) waited |= (w > d2h[(k + 1) * peers - 1] && w < first_xfer);
    EXPECT_TRUE(waited) << "chunk " << k;
  }
  if (n > 0) {
    EXPECT_GT(wait.back(), red.back()) << "returned before the last reduction";
  }
}

TEST_P(Staged, AllgatherScattersEveryBlockOfEachChunk) {
  for (bool in_place : {false, true}) {
    Rig rig(rank(), S(), C());
    const auto mine = random_values(N(), seed());
    std::vector<int64_t> send = mine, recv(N() * S(), -7);
    const int64_t *in = send.data();
    if (in_place) {
      std::copy(mine.begin(), mine.end(), recv.begin() + static_cast<std::ptrdiff_t>(rank() * N()));
      in = recv.data() + rank() * N();
    }
    rig.staged->allgather(in, recv.data(), N(), DType::I64, nullptr);
    for (int b = 0; b < S(); ++b) {
      for (size_t i = 0; i < N(); ++i) {
        ASSERT_EQ(recv[b * N() + i], (b + 1) * mine[i] + b) << "block " << b << " element " << i;
      }
    }
  }
}

TEST_P(Staged, BroadcastRootSendsChunksInOrderOthersReceiveThem) {
  const auto data = random_values(N(), seed());
  {  // root: the device data goes out, chunk by chunk, in order
    Rig rig(0, S(), C());
    std::vector<int64_t> buf = data;
    rig.staged->broadcast(buf.data(), N(), DType::I64, 0, nullptr);
    EXPECT_EQ((rig.fake->sent[{0, -1}]), data);
    EXPECT_EQ(buf, data);
    EXPECT_TRUE(rig.where("h2d").empty());
  }
  if (S() > 1) {  // non-root: the arriving chunks land in order
    Rig rig(1, S(), C());
    rig.fake->inbox[{0, -1}] = data;
    std::vector<int64_t> buf(N(), -7);
    rig.staged->broadcast(buf.data(), N(), DType::I64, 0, nullptr);
    EXPECT_EQ(buf, data);
    EXPECT_TRUE(rig.where("d2h").empty());
  }
}

// Point-to-point is staged whole and goes out as one host message (the
// host backend frames it as host-memory peers do), copies before/after.
TEST_P(Staged, SendAndRecvGoAsOneHostMessage) {
  const auto data = random_values(N(), seed());
  Rig rig(rank(), S(), C());
  std::vector<int64_t> buf = data;
  rig.staged->send(buf.data(), N(), DType::I64, 0, 5, nullptr);
  EXPECT_EQ((rig.fake->sent[{0, 5}]), data);
  rig.fake->inbox[{0, 6}] = data;
  std::vector<int64_t> got(N(), -7);
  rig.staged->recv(got.data(), N(), DType::I64, 0, 6, nullptr);
  EXPECT_EQ(got, data);
  const auto sends = rig.where("xfer send"), recvs = rig.where("xfer recv");
  ASSERT_EQ(sends.size(), 1u);
  ASSERT_EQ(recvs.size(), 1u);
  EXPECT_EQ(rig.trace[sends[0]], "xfer send " + std::to_string(N()));
  EXPECT_EQ(rig.trace[recvs[0]], "xfer recv " + std::to_string(N()));
  if (N() > 0) {  // staged out before the send, copied in after the receive
    EXPECT_LT(rig.where("d2h")[0], sends[0]);
    EXPECT_GT(rig.where("h2d")[0], recvs[0]);
  }
}

TEST_P(Staged, NonBlockingSendAndRecvDeliverOnWait) {
  const auto data = random_values(N(), seed());
  Rig rig(rank(), S(), C());
  std::vector<int64_t> buf = data;
  auto sreq = rig.staged->isend(buf.data(), N(), DType::I64, 0, 1, nullptr);
  sreq->wait();
  EXPECT_EQ((rig.fake->sent[{0, 1}]), data);
  EXPECT_EQ(rig.where("xfer send").size(), 1u);
  rig.fake->inbox[{0, 2}] = data;
  std::vector<int64_t> got(N(), -7);
  auto rreq = rig.staged->irecv(got.data(), N(), DType::I64, 0, 2, nullptr);
  EXPECT_EQ(rig.where("xfer recv").size(), 1u);
  EXPECT_TRUE(rreq->test());
  EXPECT_EQ(got, data);
  rreq->wait();  // again: same result, no second copy
  EXPECT_EQ(got, data);
}

TEST_P(Staged, GathervRootAssemblesEveryRank) {
  const int root = 0;
  std::vector<size_t> counts(static_cast<size_t>(S()));
  for (int r = 0; r < S(); ++r) counts[r] = N() + static_cast<size_t>(r);  // uneven
  Rig rig(root, S(), C());
  std::vector<std::vector<int64_t>> part(static_cast<size_t>(S()));
  for (int r = 0; r < S(); ++r) {
    part[r] = random_values(counts[r], seed() + static_cast<uint64_t>(r));
    if (r != root) rig.fake->inbox[{r, -2}] = part[r];
  }
  const size_t total = std::accumulate(counts.begin(), counts.end(), size_t{0});
  std::vector<int64_t> recv(total, -7), send = part[root];
  rig.staged->gatherv(send.data(), counts[root], recv.data(), counts.data(), DType::I64, root, nullptr);
  std::vector<int64_t> want;
  for (const auto &p : part) want.insert(want.end(), p.begin(), p.end());
  EXPECT_EQ(recv, want);
}

// The overlap the pipeline exists for: the device-to-host copy of chunk k+1
// is issued before chunk k's transfer, and chunk k's host-to-device copy
// before chunk k+1's transfer (so both run while the next chunk is on the
// wire); no chunk is transferred before a wait covers its copy.
TEST_P(Staged, CopiesOfNeighbouringChunksAreIssuedAroundEachTransfer) {
  Rig rig(rank(), S(), C());
  const auto src = random_values(N(), seed());
  std::vector<int64_t> buf = src;
  rig.staged->allreduce(buf.data(), buf.data(), N(), DType::I64, ReduceOp::Sum, nullptr);
  const auto d2h = rig.where("d2h"), h2d = rig.where("h2d"), xfer = rig.where("xfer"),
             wait = rig.where("wait");
  const size_t n = chunks(N(), C());
  ASSERT_EQ(d2h.size(), n);
  ASSERT_EQ(h2d.size(), n);
  ASSERT_EQ(xfer.size(), n);
  for (size_t k = 0; k < n; ++k) {
    EXPECT_LT(d2h[k], xfer[k]);
    EXPECT_LT(xfer[k], h2d[k]);
    if (k + 1 < n) {
      EXPECT_LT(d2h[k + 1], xfer[k]) << "chunk " << k + 1 << " is not copied out during chunk " << k;
      EXPECT_LT(h2d[k], xfer[k + 1]) << "chunk " << k << " is not copied back during chunk " << k + 1;
    }
    // a wait between the chunk's copy-out and its transfer
    bool waited = false;
    for (size_t w : wait) waited |= (w > d2h[k] && w < xfer[k]);
    EXPECT_TRUE(waited) << "chunk " << k;
  }
  if (n > 0) {
    EXPECT_GT(wait.back(), h2d.back()) << "returned before the last copy back";
  }
}

INSTANTIATE_TEST_SUITE_P(
    SizeChunkCount, Staged,
    ::testing::Combine(::testing::Values(1, 3, 4), ::testing::Values(size_t{1}, size_t{5}, size_t{64}),
                       ::testing::Values(size_t{0}, size_t{1}, size_t{7}, size_t{23}, size_t{130})),
    [](const auto &info) {
      return "S" + std::to_string(std::get<0>(info.param)) + "_C" + std::to_string(std::get<1>(info.param)) +
             "_N" + std::to_string(std::get<2>(info.param));
    });

// The deferred engine is what makes a missing wait visible: a copy is not
// performed until a wait covers it.
TEST(HostCopyEngine, DeferredCopiesHappenOnlyWhenWaitedFor) {
  HostCopyEngine engine(true);
  auto q = engine.queue(nullptr);
  int64_t dev[2] = {1, 2}, host[2] = {0, 0};
  const auto t1 = q->to_host(&host[0], &dev[0], 8);
  const auto t2 = q->to_host(&host[1], &dev[1], 8);
  EXPECT_EQ(host[0], 0);
  q->wait(t1);
  EXPECT_EQ(host[0], 1);
  EXPECT_EQ(host[1], 0);
  q->wait(t2);
  EXPECT_EQ(host[1], 2);
}

// A pipeline that skips the wait before the transfer reads stale slots
// under the deferred engine: the tests above can fail.
TEST(HostCopyEngine, APipelineWithoutWaitsIsCaught) {
  std::vector<int64_t> dev = {10, 20, 30}, slot(1, 0), seen;  // outlive the queue's copies
  HostCopyEngine engine(true);
  auto q = engine.queue(nullptr);
  for (size_t k = 0; k < dev.size(); ++k) {
    q->to_host(slot.data(), &dev[k], 8);
    seen.push_back(slot[0]);  // no wait: whatever the slot held
  }
  EXPECT_NE(seen, dev);
}

TEST(StagedBackend, StagingBuffersAreReusedAndAllReturned) {
  std::vector<std::string> trace;
  auto engine = std::make_shared<HostCopyEngine>(false);
  {
    StagedBackend staged(std::make_unique<FakeGroupBackend>(0, 2, nullptr), 0, 2, engine, 64);
    std::vector<int64_t> a(100, 1);
    for (int i = 0; i < 5; ++i)
      staged.allreduce(a.data(), a.data(), a.size(), DType::I64, ReduceOp::Sum, nullptr);
    EXPECT_EQ(engine->live_allocations(), 1) << "one staging buffer, kept for reuse";
  }
  EXPECT_EQ(engine->live_allocations(), 0);
}

// Given the group's host backend, point-to-point goes through it (its
// communicator is the one host-memory peers use); collectives stay on the
// staged backend's own.
TEST(StagedBackend, PointToPointGoesThroughTheGroupsHostBackend) {
  auto engine = std::make_shared<HostCopyEngine>(false);
  FakeGroupBackend group_host(0, 2, nullptr);
  auto own = std::make_unique<FakeGroupBackend>(0, 2, nullptr);
  FakeGroupBackend *own_ptr = own.get();
  StagedBackend staged(std::move(own), 0, 2, engine, 64, &group_host);
  std::vector<int64_t> a{1, 2, 3};
  staged.send(a.data(), a.size(), DType::I64, 1, 4, nullptr);
  staged.isend(a.data(), a.size(), DType::I64, 1, 5, nullptr)->wait();
  EXPECT_EQ((group_host.sent[{1, 4}]), a);
  EXPECT_EQ((group_host.sent[{1, 5}]), a);
  EXPECT_TRUE(own_ptr->sent.empty());
  group_host.inbox[{1, 6}] = {7, 8, 9};
  group_host.inbox[{1, 7}] = {4, 5, 6};
  std::vector<int64_t> got(3), got2(3);
  staged.recv(got.data(), 3, DType::I64, 1, 6, nullptr);
  staged.irecv(got2.data(), 3, DType::I64, 1, 7, nullptr)->wait();
  EXPECT_EQ(got, (std::vector<int64_t>{7, 8, 9}));
  EXPECT_EQ(got2, (std::vector<int64_t>{4, 5, 6}));
  staged.allreduce(a.data(), a.data(), a.size(), DType::I64, ReduceOp::Sum, nullptr);
  EXPECT_EQ(a, (std::vector<int64_t>{4, 7, 10}));  // the fake's 3x + 1, from the staged backend's own
}

// A group larger than one device reduction takes reduces on the host: the
// fake's reduce-scatter (sum of (b + 1) x block b) is what lands.
TEST(StagedBackend, ReduceScatterOfGroupsBeyondOneReductionReducesOnTheHost) {
  const int S = kMaxReduceInputs + 1, rank = 3;
  const size_t N = 5;
  Rig rig(rank, S, 2);
  const auto src = random_values(N * S, 99);
  std::vector<int64_t> recv(N, -7);
  rig.staged->reduce_scatter(src.data(), recv.data(), N, DType::I64, ReduceOp::Sum, nullptr);
  for (size_t i = 0; i < N; ++i) {
    int64_t want = 0;
    for (int b = 0; b < S; ++b) want += (b + 1) * src[b * N + i];
    ASSERT_EQ(recv[i], want) << "element " << i;
  }
  EXPECT_EQ(rig.where("xfer reduce_scatter").size(), 3u);  // chunks of 2, 2 and 1
  EXPECT_TRUE(rig.where("reduce").empty());
}

// Past 4 ranks reduce-scatter's pieces shrink (staging memory stays at 16
// chunk sizes): 8 ranks, chunks of 4 elements, pieces of 2.
TEST(StagedBackend, ReduceScatterPiecesShrinkPastFourRanks) {
  const int S = 8, rank = 5;
  const size_t N = 7;
  Rig rig(rank, S, 4);
  std::vector<int64_t> want = random_values(N * S, 5);
  std::vector<int64_t> send = want, recv(N, -7);
  want.erase(want.begin(), want.begin() + rank * N);
  want.resize(N);
  for (int b = 0; b < S; ++b)
    if (b != rank) {
      const auto piece = random_values(N, 100 + b);
      rig.fake->inbox[{b, kExchangeTag}] = piece;
      for (size_t i = 0; i < N; ++i) want[i] += piece[i];
    }
  rig.staged->reduce_scatter(send.data(), recv.data(), N, DType::I64, ReduceOp::Sum, nullptr);
  EXPECT_EQ(recv, want);
  EXPECT_EQ(rig.where("reduce 8 2").size(), 3u);
  EXPECT_EQ(rig.where("reduce 8 1").size(), 1u);
  EXPECT_EQ(rig.where("xfer send 2").size(), 3u * (S - 1));
}

// Blocks below device_reduce_min_bytes reduce on the host (a kernel per
// chunk costs more than it saves there); from it on, on the device.
TEST(StagedBackend, ReduceScatterOfSmallBlocksReducesOnTheHost) {
  const int S = 3, rank = 1;
  const size_t N = 5;
  const auto src = random_values(N * S, 17);
  {
    Rig rig(rank, S, 2, /*device_reduce_min_bytes=*/N * 8 + 1);
    std::vector<int64_t> recv(N, -7);
    rig.staged->reduce_scatter(src.data(), recv.data(), N, DType::I64, ReduceOp::Sum, nullptr);
    for (size_t i = 0; i < N; ++i) {
      int64_t want = 0;
      for (int b = 0; b < S; ++b) want += (b + 1) * src[b * N + i];  // the fake's reduce-scatter
      ASSERT_EQ(recv[i], want) << "element " << i;
    }
    EXPECT_EQ(rig.where("xfer reduce_scatter").size(), 3u);  // chunks of 2, 2 and 1
    EXPECT_TRUE(rig.where("reduce").empty());
  }
  {
    Rig rig(rank, S, 2, /*device_reduce_min_bytes=*/N * 8);
    for (int b = 0; b < S; ++b)
      if (b != rank) rig.fake->inbox[{b, kExchangeTag}] = random_values(N, 40 + b);
    std::vector<int64_t> recv(N, -7);
    rig.staged->reduce_scatter(src.data(), recv.data(), N, DType::I64, ReduceOp::Sum, nullptr);
    EXPECT_TRUE(rig.where("xfer reduce_scatter").empty());
    EXPECT_EQ(rig.where("reduce").size(), 3u);
  }
}

// kAutoChunk: a quarter of the call in whole 4 KiB pages, at least 256 KiB,
// at most 2 MiB (kDefaultChunkBytes).
TEST(StagedBackend, AutoChunksCutACallInFourWithinBounds) {
  struct Case {
    size_t count, chunk, last;  // int64 elements
  } cases[] = {
      {100, 100, 100},                             // below one minimum chunk: whole
      {size_t{1} << 17, size_t{1} << 15, size_t{1} << 15},  // 1 MiB: 4 x 256 KiB
      {393217, 98816, 96769},                      // 3 MiB + 8 bytes: a quarter rounded up to pages
      {size_t{1} << 21, size_t{1} << 18, size_t{1} << 18},  // 16 MiB: 2 MiB chunks
  };
  for (const Case &c : cases) {
    Rig rig(0, 1, /*chunk_elems=*/0);
    std::vector<int64_t> a(c.count, 1);
    rig.staged->allreduce(a.data(), a.data(), a.size(), DType::I64, ReduceOp::Sum, nullptr);
    const size_t n = chunks(c.count, c.chunk);
    EXPECT_EQ(rig.where("xfer allreduce").size(), n) << c.count;
    EXPECT_EQ(rig.where("xfer allreduce " + std::to_string(c.chunk)).size(), n - (c.last != c.chunk)) << c.count;
    EXPECT_EQ(rig.where("xfer allreduce " + std::to_string(c.last)).size(), c.last != c.chunk ? 1u : n) << c.count;
  }
}

TEST(StagedBackend, ChunksAreBoundedByTheChunkSize) {
  Rig rig(0, 1, 4);
  std::vector<int64_t> a(10, 1);
  rig.staged->allreduce(a.data(), a.data(), a.size(), DType::I64, ReduceOp::Sum, nullptr);
  EXPECT_EQ(rig.where("xfer allreduce 4").size(), 2u);
  EXPECT_EQ(rig.where("xfer allreduce 2").size(), 1u);
}

}  // namespace
}  // namespace smp::comm::staged
