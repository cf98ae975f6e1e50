// The composition root under mpirun: a group gets two host engines (MPI),
// each on its own duplicate of the group's communicator, and device engines
// exactly where some rank has a GPU (on every rank alike). np 1 and 3.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>
#include <vector>

#include "comm/backend_select.h"
#include "common/error.h"
#if SMP_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace smp::comm {
namespace {

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

bool any_gpu() {
  int gpu = 0;
#if SMP_HAVE_CUDA
  gpu = cuda::device_count() > 0 ? 1 : 0;
#endif
  MPI_Allreduce(MPI_IN_PLACE, &gpu, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return gpu != 0;
}

TEST(BackendSelect, DeviceEnginesWhereAnyRankHasAGpu) {
  const bool gpu = any_gpu();
  BackendSelect select(MPI_COMM_WORLD, 1 << 20, 0, 0);
  EXPECT_EQ(select.device(), gpu);
  GroupBackends b = select.select(MPI_COMM_WORLD);
  ASSERT_TRUE(b.host && b.host_async);
  EXPECT_STREQ(b.host->name(), "mpi");
  EXPECT_STREQ(b.host_async->name(), "mpi");
  EXPECT_EQ(b.device != nullptr, gpu);
  EXPECT_EQ(b.device_async != nullptr, gpu);
}

// Both host engines reduce over the group they were made for (here half the
// world), on duplicates that outlive the caller's communicator.
TEST(BackendSelect, HostEnginesWorkOnTheirOwnCommunicators) {
  BackendSelect select(MPI_COMM_WORLD, 3, 0, 0);  // 3 elements per MPI call: the chunked path
  MPI_Comm half = MPI_COMM_NULL;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
  GroupBackends b = select.select(half);
  MPI_Comm_free(&half);  // the engines hold duplicates
  int n = 0;
  for (int r = rank % 2; r < world_size(); r += 2) n += r + 1;
  std::vector<int> in(10, rank + 1), out(10, 0), out2(10, 0);
  b.host_async->allreduce(in.data(), out2.data(), in.size(), DType::I32, ReduceOp::Sum, nullptr);
  b.host->allreduce(in.data(), out.data(), in.size(), DType::I32, ReduceOp::Sum, nullptr);
  EXPECT_EQ(out, std::vector<int>(10, n));
  EXPECT_EQ(out2, std::vector<int>(10, n));
}

}  // namespace
}  // namespace smp::comm

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto &listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed) std::fprintf(stderr, "[rank %d] failed\n", rank);
  MPI_Finalize();
  return any;
}
