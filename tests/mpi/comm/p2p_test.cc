// Point-to-point: a random schedule of isend/irecv (sizes, dtypes, tags,
// repeated pair+tag to check ordering) waited in random order; blocking
// send/recv ordering; and concurrent use from several threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "mpi_main.h"
#include "reference.h"

namespace smp::test {
namespace {

int world_rank() { int r = 0; smp_rank(SMP_WORLD, &r); return r; }
int world_size() { int s = 0; smp_size(SMP_WORLD, &s); return s; }

// Payload of message m, element i: identifies the message, so a message
// delivered out of order (or to the wrong receive) is caught.
double payload(size_t m, size_t i, smp_dtype_t t) {
  const int range = t == SMP_UINT8 ? 200 : 100;
  const int v = static_cast<int>((m * 31 + i * 7) % static_cast<size_t>(range));
  return t == SMP_UINT8 ? v : v - 50;
}

struct Msg { int src, dst, tag; size_t count; smp_dtype_t t; };

TEST(P2P, RandomScheduleInterleavedIsendIrecv) {
  const int me = world_rank(), n = world_size();
  std::mt19937 rng(12345);  // the same schedule on every rank
  const size_t sizes[] = {0, 1, 7, 1000, 70000, 300001};
  std::vector<Msg> msgs;
  for (int k = 0; k < 300; ++k) {
    Msg m;
    m.src = static_cast<int>(rng() % n);
    m.dst = static_cast<int>(rng() % n);
    m.tag = static_cast<int>(rng() % 4);  // few tags: many same pair+tag messages
    m.count = sizes[rng() % (k % 10 == 0 ? 6 : 4)];
    m.t = static_cast<smp_dtype_t>(rng() % 8);
    msgs.push_back(m);
  }
  std::vector<Buf> bufs;
  bufs.reserve(msgs.size());
  std::vector<smp_request_t> reqs;
  std::vector<size_t> recv_of;  // message index of each receive
  for (size_t k = 0; k < msgs.size(); ++k) {
    const Msg &m = msgs[k];
    bufs.emplace_back(m.count, m.t);
    if (m.src == me) {
      for (size_t i = 0; i < m.count; ++i) bufs[k].set(i, payload(k, i, m.t));
      smp_request_t r = nullptr;
      ASSERT_EQ(smp_isend(bufs[k].data(), m.count, m.t, m.dst, SMP_WORLD, m.tag, nullptr, &r), SMP_SUCCESS)
          << smp_last_error();
      reqs.push_back(r);
    }
  }
  // Receives posted after all sends of this rank (but interleaved with the
  // other ranks' sends); a self-message gets its own buffer.
  std::vector<Buf> rbufs;
  rbufs.reserve(msgs.size());
  for (size_t k = 0; k < msgs.size(); ++k) {
    const Msg &m = msgs[k];
    if (m.dst != me) continue;
    rbufs.emplace_back(m.count, m.t);
    smp_request_t r = nullptr;
    ASSERT_EQ(smp_irecv(rbufs.back().data(), m.count, m.t, m.src, SMP_WORLD, m.tag, nullptr, &r), SMP_SUCCESS)
        << smp_last_error();
    reqs.push_back(r);
    recv_of.push_back(k);
  }
  std::vector<size_t> order(reqs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(me)));
  for (size_t i : order) EXPECT_EQ(smp_wait(reqs[i]), SMP_SUCCESS) << smp_last_error();
  size_t bad = 0;
  for (size_t j = 0; j < recv_of.size(); ++j) {
    const size_t k = recv_of[j];
    for (size_t i = 0; i < msgs[k].count; ++i) bad += rbufs[j].at(i) != payload(k, i, msgs[k].t);
  }
  EXPECT_EQ(bad, 0u);
}

TEST(P2P, SamePairSameTagArrivesInSendOrder) {
  const int me = world_rank(), n = world_size();
  const int to = (me + 1) % n, from = (me + n - 1) % n;
  // Mixed blocking / non-blocking sends, received with blocking recvs.
  std::vector<int64_t> seq(50);
  std::vector<smp_request_t> reqs;
  for (int k = 0; k < 50; ++k) {
    seq[static_cast<size_t>(k)] = me * 1000 + k;
    smp_request_t r = nullptr;
    ASSERT_EQ(smp_isend(&seq[static_cast<size_t>(k)], 1, SMP_INT64, to, SMP_WORLD, 11, nullptr, &r), SMP_SUCCESS);
    reqs.push_back(r);
  }
  for (int k = 0; k < 50; ++k) {
    int64_t got = -1;
    ASSERT_EQ(smp_recv(&got, 1, SMP_INT64, from, SMP_WORLD, 11, nullptr), SMP_SUCCESS) << smp_last_error();
    EXPECT_EQ(got, from * 1000 + k);
  }
  for (smp_request_t r : reqs) EXPECT_EQ(smp_wait(r), SMP_SUCCESS);
}

TEST(P2P, TestPollsUntilDone) {
  const int me = world_rank(), n = world_size();
  std::vector<float> out(100000, static_cast<float>(me)), in(100000, -1);
  smp_request_t s = nullptr, r = nullptr;
  ASSERT_EQ(smp_irecv(in.data(), in.size(), SMP_FLOAT32, (me + n - 1) % n, SMP_WORLD, 2, nullptr, &r), SMP_SUCCESS);
  ASSERT_EQ(smp_isend(out.data(), out.size(), SMP_FLOAT32, (me + 1) % n, SMP_WORLD, 2, nullptr, &s), SMP_SUCCESS);
  int rdone = 0, sdone = 0;
  while (!rdone || !sdone) {
    if (!rdone) {
      ASSERT_EQ(smp_test(r, &rdone), SMP_SUCCESS);
    }
    if (!sdone) {
      ASSERT_EQ(smp_test(s, &sdone), SMP_SUCCESS);
    }
  }
  EXPECT_EQ(in[99999], static_cast<float>((me + n - 1) % n));
}

// Several threads of each rank talk to their peers at once (tag = thread),
// while another thread runs collectives on WORLD.
TEST(Threads, ConcurrentPointToPointAndCollectives) {
  const int me = world_rank(), n = world_size();
  constexpr int kThreads = 4, kRounds = 30;
  std::vector<int> errors(kThreads + 1, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int32_t> out(1000 + t), in(1000 + t);
      for (int k = 0; k < kRounds; ++k) {
        for (size_t i = 0; i < out.size(); ++i) out[i] = me * 100000 + t * 1000 + k;
        smp_request_t r = nullptr;
        if (smp_irecv(in.data(), in.size(), SMP_INT32, (me + n - 1) % n, SMP_WORLD, t, nullptr, &r) != SMP_SUCCESS ||
            smp_send(out.data(), out.size(), SMP_INT32, (me + 1) % n, SMP_WORLD, t, nullptr) != SMP_SUCCESS ||
            smp_wait(r) != SMP_SUCCESS) {
          ++errors[static_cast<size_t>(t)];
          return;
        }
        const int32_t want = ((me + n - 1) % n) * 100000 + t * 1000 + k;
        for (int32_t v : in) errors[static_cast<size_t>(t)] += v != want;
      }
    });
  }
  threads.emplace_back([&] {
    for (int k = 0; k < kRounds; ++k) {
      int64_t v = me + k, sum = 0;
      if (smp_allreduce(&v, &sum, 1, SMP_INT64, SMP_SUM, SMP_WORLD, nullptr) != SMP_SUCCESS ||
          sum != static_cast<int64_t>(n) * (n - 1) / 2 + static_cast<int64_t>(n) * k)
        ++errors[kThreads];
    }
  });
  for (auto &th : threads) th.join();
  for (int t = 0; t <= kThreads; ++t) EXPECT_EQ(errors[static_cast<size_t>(t)], 0) << "thread " << t;
}

}  // namespace
}  // namespace smp::test

int main(int argc, char **argv) { return smp::test::run_all_ranks(argc, argv); }
