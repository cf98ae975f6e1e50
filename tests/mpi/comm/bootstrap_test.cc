// The control plane across processes: CommBootstrap (over WORLD's
// Communicator) and MpiBootstrap (over an MPI communicator) run the same
// checks; np 2 and 3.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "comm/comm_bootstrap.h"
#include "comm/context.h"
#include "comm/mpi/mpi_bootstrap.h"
#include "common/error.h"

namespace smp::comm {
namespace {

// Rank r's bytes: binary, a different length on every rank, empty on rank 1.
std::string bytes_of(int r) {
  if (r == 1) return std::string();
  std::string s(static_cast<size_t>(3 * r + 2), '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(0xF0 + r + static_cast<int>(i));
  return s;
}

std::unique_ptr<Bootstrap> make(const std::string &kind) {
  if (kind == "comm")
    return std::make_unique<CommBootstrap>(Context::get().group(topo::Group::World), &Context::get().layout());
  return std::make_unique<mpi::MpiBootstrap>(MPI_COMM_WORLD, "test bootstrap");
}

class Bootstraps : public ::testing::TestWithParam<std::string> {};

TEST_P(Bootstraps, RankAndSizeAreTheWorlds) {
  auto b = make(GetParam());
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(b->rank(), rank);
  EXPECT_EQ(b->size(), size);
}

TEST_P(Bootstraps, AllgathervEveryMembersBytesInRankOrder) {
  auto b = make(GetParam());
  std::vector<std::string> want;
  for (int r = 0; r < b->size(); ++r) want.push_back(bytes_of(r));
  EXPECT_EQ(b->allgatherv(bytes_of(b->rank())), want);
  EXPECT_EQ(b->allgatherv(""), std::vector<std::string>(static_cast<size_t>(b->size())));
}

TEST_P(Bootstraps, GathervToTheLastRank) {
  auto b = make(GetParam());
  const int root = b->size() - 1;
  std::vector<size_t> counts;
  std::string want;
  for (int r = 0; r < b->size(); ++r) {
    counts.push_back(bytes_of(r).size());
    want += bytes_of(r);
  }
  const std::string mine = bytes_of(b->rank());
  std::string recv(want.size(), '#');
  b->gatherv(mine.data(), mine.size(), b->rank() == root ? recv.data() : nullptr, counts.data(), root);
  if (b->rank() == root) {
    EXPECT_EQ(recv, want);
  }
}

TEST_P(Bootstraps, BroadcastAllMinBarrier) {
  auto b = make(GetParam());
  const std::string s = b->rank() == 1 ? bytes_of(2) : "not root";
  EXPECT_EQ(broadcast_string(*b, s, 1), bytes_of(2));
  EXPECT_EQ(b->all_min(10 + b->rank()), 10);
  b->barrier();
}

TEST_P(Bootstraps, AgreeCarriesTheLowestFailure) {
  auto b = make(GetParam());
  EXPECT_NO_THROW(agree(*b, nullptr));
  std::exception_ptr mine;
  if (b->rank() >= 1) mine = std::make_exception_ptr(Error(Status::IO, "rank-" + std::to_string(b->rank())));
  try {
    agree(*b, mine);
    ADD_FAILURE() << "agree returned";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::IO);
    EXPECT_EQ(std::string(e.what()), b->rank() == 1 ? "rank-1" : "rank 1: rank-1");
  }
}

INSTANTIATE_TEST_SUITE_P(Both, Bootstraps, ::testing::Values("comm", "mpi"));

TEST(CommBootstrap, DescribesTheLayout) {
  CommBootstrap with(Context::get().group(topo::Group::World), &Context::get().layout());
  const int n = with.size();
  EXPECT_EQ(with.describe(), "size=" + std::to_string(n) + " pp=1 tp=1 rdp=" + std::to_string(n) + " placement=DPT");
  CommBootstrap without(Context::get().group(topo::Group::World));
  EXPECT_EQ(without.describe(), "size=" + std::to_string(n));
}

}  // namespace
}  // namespace smp::comm

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto &ctx = smp::comm::Context::init();
  if (ctx.world_rank() != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed) std::fprintf(stderr, "[rank %d] failed\n", ctx.world_rank());
  smp::comm::Context::finalize();
  return any;
}
