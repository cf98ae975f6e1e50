// The control plane without MPI: the thread Bootstrap's collectives (as the
// MPI and Communicator versions must behave), broadcast_string, agree, and
// SelfBootstrap.
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "comm/bootstrap.h"
#include "common/error.h"
#include "thread_bootstrap.h"

namespace smp::comm {
namespace {

using testing::ThreadBootstrap;
using testing::ThreadGroup;

// Runs body(bootstrap) on n threads, one per rank; rethrows nothing (the
// bodies record what they saw).
void run_ranks(int n, const std::function<void(Bootstrap &)> &body) {
  ThreadGroup group(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&group, &body, r] {
      ThreadBootstrap b(group, r);
      body(b);
    });
  for (auto &t : threads) t.join();
}

TEST(Bootstrap, AllgathervEmptyBinaryAndUnequal) {
  const std::vector<std::string> sent = {std::string(), std::string("a\0b\xff", 4), std::string(1000, 'x'),
                                         std::string("\0", 1)};
  std::vector<std::vector<std::string>> got(sent.size());
  run_ranks(static_cast<int>(sent.size()),
            [&](Bootstrap &b) { got[static_cast<size_t>(b.rank())] = b.allgatherv(sent[static_cast<size_t>(b.rank())]); });
  for (const auto &g : got) EXPECT_EQ(g, sent);
}

TEST(Bootstrap, AllgathervAllEmpty) {
  std::vector<std::vector<std::string>> got(3);
  run_ranks(3, [&](Bootstrap &b) { got[static_cast<size_t>(b.rank())] = b.allgatherv(""); });
  for (const auto &g : got) EXPECT_EQ(g, std::vector<std::string>(3));
}

TEST(Bootstrap, GathervConcatenatesInRankOrderOnRootOnly) {
  const std::vector<std::string> sent = {"zero", "", std::string("t\0o", 3)};
  const std::vector<size_t> counts = {4, 0, 3};
  std::vector<std::string> recv(3, std::string(7, '#'));
  run_ranks(3, [&](Bootstrap &b) {
    const auto &mine = sent[static_cast<size_t>(b.rank())];
    b.gatherv(mine.data(), mine.size(), recv[static_cast<size_t>(b.rank())].data(), counts.data(), 1);
  });
  EXPECT_EQ(recv[1], std::string("zerot\0o", 7));
  EXPECT_EQ(recv[0], std::string(7, '#'));
  EXPECT_EQ(recv[2], std::string(7, '#'));
}

TEST(Bootstrap, BroadcastStringFromAnyRoot) {
  std::vector<std::string> got(3);
  run_ranks(3, [&](Bootstrap &b) {
    const std::string mine = b.rank() == 2 ? std::string("dir\0x", 5) : "ignored " + std::to_string(b.rank());
    got[static_cast<size_t>(b.rank())] = broadcast_string(b, mine, 2);
  });
  for (const auto &g : got) EXPECT_EQ(g, std::string("dir\0x", 5));
}

// Each rank's outcome of agree: "" when it returned, else the status and
// message it threw.
std::vector<std::string> agree_outcomes(int n, const std::function<std::exception_ptr(int)> &local) {
  std::vector<std::string> out(static_cast<size_t>(n));
  run_ranks(n, [&](Bootstrap &b) {
    auto &o = out[static_cast<size_t>(b.rank())];
    try {
      agree(b, local(b.rank()));
    } catch (const Error &e) {
      o = std::to_string(static_cast<int>(e.status())) + " " + e.what();
    } catch (const std::exception &e) {
      o = std::string("other ") + e.what();
    }
  });
  return out;
}

std::exception_ptr io_error(const std::string &what) {
  return std::make_exception_ptr(Error(Status::IO, what));
}

TEST(Agree, NoFailureReturnsEverywhere) {
  EXPECT_EQ(agree_outcomes(3, [](int) { return std::exception_ptr(); }), std::vector<std::string>(3));
}

TEST(Agree, OneFailureReachesEveryRank) {
  const auto out = agree_outcomes(3, [](int r) { return r == 1 ? io_error("disk full") : nullptr; });
  EXPECT_EQ(out[0], "-7 rank 1: disk full");
  EXPECT_EQ(out[1], "-7 disk full");  // the failing rank rethrows its own error
  EXPECT_EQ(out[2], "-7 rank 1: disk full");
}

TEST(Agree, LowestFailingRankWinsAndNonSmpErrorsMapToStatuses) {
  const auto out = agree_outcomes(4, [](int r) -> std::exception_ptr {
    if (r == 1) return std::make_exception_ptr(std::runtime_error("boom"));
    if (r == 2) return io_error("disk full");
    if (r == 3) return std::make_exception_ptr(std::bad_alloc());
    return nullptr;
  });
  EXPECT_EQ(out[0], "-9 rank 1: boom");
  EXPECT_EQ(out[1], "other boom");  // its own exception, rethrown as it was
  EXPECT_EQ(out[2], "-9 rank 1: boom");
  EXPECT_EQ(out[3], "-9 rank 1: boom");
}

TEST(Agree, OutOfMemoryIsABackendError) {
  const auto out = agree_outcomes(2, [](int r) -> std::exception_ptr {
    return r == 0 ? std::make_exception_ptr(std::bad_alloc()) : nullptr;
  });
  EXPECT_EQ(out[1], "-4 rank 0: out of memory");
}

TEST(SelfBootstrap, EveryCollectiveIsLocal) {
  SelfBootstrap b;
  EXPECT_EQ(b.rank(), 0);
  EXPECT_EQ(b.size(), 1);
  EXPECT_EQ(b.describe(), "size=1");
  EXPECT_EQ(b.allgatherv(std::string("a\0", 2)), std::vector<std::string>{std::string("a\0", 2)});
  EXPECT_EQ(b.all_min(7), 7);
  EXPECT_EQ(broadcast_string(b, "x", 0), "x");
  const std::string s = "abc";
  std::string r(3, '-');
  const size_t n = 3;
  b.gatherv(s.data(), 3, r.data(), &n, 0);
  EXPECT_EQ(r, "abc");
  const size_t wrong = 2;
  EXPECT_THROW(b.gatherv(s.data(), 3, r.data(), &wrong, 0), Error);
  b.barrier();
  EXPECT_NO_THROW(agree(b, nullptr));
  EXPECT_THROW(agree(b, io_error("x")), Error);
}

TEST(ThreadBootstrap, AllMinAndBarrier) {
  std::vector<int> got(3);
  run_ranks(3, [&](Bootstrap &b) {
    b.barrier();
    got[static_cast<size_t>(b.rank())] = b.all_min(10 - b.rank());
  });
  EXPECT_EQ(got, std::vector<int>(3, 8));
}

}  // namespace
}  // namespace smp::comm
