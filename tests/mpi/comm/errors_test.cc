// The C API's error contract: calls before smp_init / after smp_finalize,
// bad configurations, double init, and every invalid argument: the right
// status, a message naming the argument, and no communication (the bad
// calls run on rank 0 alone; a call that communicated would hang the job,
// which SMP_TIMEOUT turns into a failure). The tests run in order: they
// walk one process through its lifetime.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "smp/smp.h"

namespace {

int g_rank = 0, g_size = 1;

#define EXPECT_ERR(call, status, needle)                                             \
  do {                                                                               \
    EXPECT_EQ((call), (status)) << #call;                                            \
    EXPECT_NE(std::strstr(smp_last_error(), (needle)), nullptr)                      \
        << #call << ": message '" << smp_last_error() << "' does not mention '" << (needle) << "'"; \
  } while (0)

TEST(Lifecycle, CallsBeforeInitAreRefused) {
  int r = 0;
  float x = 0;
  EXPECT_ERR(smp_rank(SMP_WORLD, &r), SMP_ERR_NOT_INITIALIZED, "smp_init");
  EXPECT_ERR(smp_allreduce(&x, &x, 1, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr), SMP_ERR_NOT_INITIALIZED,
             "not initialized");
  EXPECT_ERR(smp_barrier(SMP_WORLD), SMP_ERR_NOT_INITIALIZED, "not initialized");
  EXPECT_ERR(smp_local_rank(&r), SMP_ERR_NOT_INITIALIZED, "not initialized");
  EXPECT_ERR(smp_device(&r), SMP_ERR_NOT_INITIALIZED, "not initialized");
  EXPECT_ERR(smp_finalize(), SMP_ERR_NOT_INITIALIZED, "not initialized");
  // Valid before init.
  int major = -1, minor = -1, patch = -1;
  smp_version(&major, &minor, &patch);
  EXPECT_EQ(major, SMP_VERSION_MAJOR);
  EXPECT_EQ(minor, SMP_VERSION_MINOR);
  EXPECT_EQ(patch, SMP_VERSION_PATCH);
  EXPECT_STREQ(smp_status_string(SMP_ERR_TIMEOUT), "timeout");
  EXPECT_STREQ(smp_status_string(static_cast<smp_status_t>(42)), "unknown status");
}

TEST(Lifecycle, BadConfigsAreRefusedBeforeMpiStarts) {
  smp_config_t c = SMP_CONFIG_INIT;
  c.struct_size = 4;
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "struct_size");
  c = smp_config_t SMP_CONFIG_INIT;
  c.pp_size = -2;
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "pp_size");
  c = smp_config_t SMP_CONFIG_INIT;
  c.tp_size = -1;
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "tp_size");
  c = smp_config_t SMP_CONFIG_INIT;
  c.placement = "XYZ";
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "placement");
  c = smp_config_t SMP_CONFIG_INIT;
  c.check = 7;
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "check");
  // SMP_DEVICE must be a device index or -1 (the run's own value, if any,
  // is put back for the init that follows).
  const char *given = std::getenv("SMP_DEVICE");
  const std::string saved = given ? given : "";
  for (const char *bad : {"gpu0", "-2", "1.5", "99999999999"}) {
    setenv("SMP_DEVICE", bad, 1);
    c = smp_config_t SMP_CONFIG_INIT;
    EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "SMP_DEVICE");
  }
  if (given) setenv("SMP_DEVICE", saved.c_str(), 1);
  else unsetenv("SMP_DEVICE");
}

TEST(Lifecycle, LayoutThatDoesNotDivideTheWorldIsRefused) {
  // 7 divides no rank count these tests use.
  smp_config_t c = SMP_CONFIG_INIT;
  c.pp_size = 7;
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "pp=7");
}

// pp * tp past INT_MAX, from the environment smp_init(NULL) reads and from
// a config: one line naming both degrees, never a wrapped product that
// happens to divide the world (2^31-1 x 2 was -2) or a division by zero
// (65536 x 65536 was 0, SIGFPE).
TEST(Lifecycle, DegreesWhoseProductOverflowsAreRefused) {
  auto saved = [](const char *name) {
    const char *v = std::getenv(name);
    return std::make_pair(v != nullptr, std::string(v ? v : ""));
  };
  const auto pp_env = saved("SMP_PP_SIZE"), tp_env = saved("SMP_TP_SIZE");
  for (auto [pp, tp] : {std::pair{"2147483647", "2"}, std::pair{"2", "2147483647"},
                        std::pair{"65536", "65536"}, std::pair{"2147483647", "2147483647"}}) {
    setenv("SMP_PP_SIZE", pp, 1);
    setenv("SMP_TP_SIZE", tp, 1);
    EXPECT_ERR(smp_init(nullptr), SMP_ERR_INVALID_ARGUMENT, (std::string("pp=") + pp + " x tp=" + tp).c_str());
    EXPECT_EQ(std::strchr(smp_last_error(), '\n'), nullptr) << smp_last_error();
    const std::string product = std::to_string(std::stoll(pp) * std::stoll(tp));
    EXPECT_NE(std::strstr(smp_last_error(), product.c_str()), nullptr) << smp_last_error();
  }
  for (auto &[name, v] : {std::pair{"SMP_PP_SIZE", pp_env}, std::pair{"SMP_TP_SIZE", tp_env}}) {
    if (v.first) setenv(name, v.second.c_str(), 1);
    else unsetenv(name);
  }
  smp_config_t c = SMP_CONFIG_INIT;
  c.pp_size = 2147483647;
  c.tp_size = 2;
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "pp=2147483647 x tp=2");
}

TEST(Lifecycle, InitTwiceIsAnError) {
  smp_config_t c = SMP_CONFIG_INIT;
  c.timeout_seconds = 60;  // a bad call that communicated would abort, not hang
  ASSERT_EQ(smp_init(&c), SMP_SUCCESS) << smp_last_error();
  EXPECT_ERR(smp_init(&c), SMP_ERR_INVALID_ARGUMENT, "already initialized");
  ASSERT_EQ(smp_rank(SMP_WORLD, &g_rank), SMP_SUCCESS);
  ASSERT_EQ(smp_size(SMP_WORLD, &g_size), SMP_SUCCESS);
}

// Every rank of these runs is on this host: Open MPI's own local rank and
// size are the reference. The device is SMP_DEVICE when the run sets it;
// otherwise the local rank modulo the GPUs (-1 without: this test does not
// count GPUs, so it checks the bound that rule implies).
TEST(Lifecycle, LocalRankSizeAndDevice) {
  int local_rank = -7, local_size = -7, device = -7;
  ASSERT_EQ(smp_local_rank(&local_rank), SMP_SUCCESS);
  ASSERT_EQ(smp_local_size(&local_size), SMP_SUCCESS);
  ASSERT_EQ(smp_device(&device), SMP_SUCCESS);
  const char *ompi_rank = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const char *ompi_size = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  ASSERT_TRUE(ompi_rank && ompi_size) << "run under Open MPI's mpirun";
  EXPECT_EQ(local_rank, std::atoi(ompi_rank));
  EXPECT_EQ(local_size, std::atoi(ompi_size));
  EXPECT_EQ(local_rank, g_rank);
  EXPECT_EQ(local_size, g_size);
  if (const char *d = std::getenv("SMP_DEVICE")) {
    EXPECT_EQ(device, std::atoi(d));
  } else {
    EXPECT_GE(device, -1);
    EXPECT_LE(device, local_rank);
  }
  EXPECT_ERR(smp_local_rank(nullptr), SMP_ERR_INVALID_ARGUMENT, "local_rank");
  EXPECT_ERR(smp_local_size(nullptr), SMP_ERR_INVALID_ARGUMENT, "local_size");
  EXPECT_ERR(smp_device(nullptr), SMP_ERR_INVALID_ARGUMENT, "device");
}

TEST(Lifecycle, EachInvalidArgumentIsNamed) {
  if (g_rank == 0) {
    float a[8] = {0}, b[64] = {0};
    int r = 0;
    const size_t huge = SIZE_MAX - 5;
    const auto bad_dtype = static_cast<smp_dtype_t>(99);
    const auto bad_op = static_cast<smp_op_t>(-1);
    const auto bad_group = static_cast<smp_group_t>(6);
    smp_request_t req = nullptr;
    EXPECT_ERR(smp_rank(bad_group, &r), SMP_ERR_INVALID_ARGUMENT, "group");
    EXPECT_ERR(smp_rank(SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "rank");
    EXPECT_ERR(smp_size(SMP_TP_GROUP, nullptr), SMP_ERR_INVALID_ARGUMENT, "size");
    EXPECT_ERR(smp_allreduce(nullptr, b, 4, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "sendbuf");
    EXPECT_ERR(smp_allreduce(a, nullptr, 4, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "recvbuf");
    EXPECT_ERR(smp_allreduce(a, b, 4, bad_dtype, SMP_SUM, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "dtype");
    EXPECT_ERR(smp_allreduce(a, b, 4, SMP_FLOAT32, bad_op, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "op");
    EXPECT_ERR(smp_allreduce(a, b, 4, SMP_FLOAT32, SMP_SUM, bad_group, nullptr), SMP_ERR_INVALID_ARGUMENT, "group");
    EXPECT_ERR(smp_allreduce(a, b, huge, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "count");
    EXPECT_ERR(smp_allreduce(b, b + 1, 4, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "overlap");
    EXPECT_ERR(smp_reduce_scatter(a, nullptr, 2, SMP_INT32, SMP_MAX, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "recvbuf");
    EXPECT_ERR(smp_reduce_scatter(a, b, SIZE_MAX / 3, SMP_INT64, SMP_SUM, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "recvcount");
    EXPECT_ERR(smp_allgather(nullptr, b, 1, SMP_UINT8, SMP_DP_GROUP, nullptr), SMP_ERR_INVALID_ARGUMENT, "sendbuf");
    EXPECT_ERR(smp_allgather(a, b, huge, SMP_UINT8, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "sendcount");
    EXPECT_ERR(smp_broadcast(a, 1, SMP_FLOAT64, -1, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "root -1");
    EXPECT_ERR(smp_broadcast(a, 1, SMP_FLOAT64, g_size, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "root");
    EXPECT_ERR(smp_broadcast(nullptr, 1, SMP_FLOAT64, 0, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "buf");
    EXPECT_ERR(smp_gatherv(a, 1, b, nullptr, SMP_FLOAT32, 0, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT, "recvcounts");
    std::vector<size_t> counts(static_cast<size_t>(g_size), 1);
    counts[0] = 2;
    EXPECT_ERR(smp_gatherv(a, 1, b, counts.data(), SMP_FLOAT32, 0, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT,
               "recvcounts[0]");
    counts[0] = 1;
    EXPECT_ERR(smp_gatherv(a, 1, nullptr, counts.data(), SMP_FLOAT32, 0, SMP_WORLD, nullptr), SMP_ERR_INVALID_ARGUMENT,
               "recvbuf");
    EXPECT_ERR(smp_gatherv(a, 1, b, counts.data(), SMP_FLOAT32, g_size + 3, SMP_WORLD, nullptr),
               SMP_ERR_INVALID_ARGUMENT, "root");
    EXPECT_ERR(smp_send(a, 1, SMP_INT8, g_size, SMP_WORLD, 0, nullptr), SMP_ERR_INVALID_ARGUMENT, "peer");
    EXPECT_ERR(smp_send(a, 1, SMP_INT8, 0, SMP_WORLD, -1, nullptr), SMP_ERR_INVALID_ARGUMENT, "tag");
    EXPECT_ERR(smp_send(nullptr, 3, SMP_INT8, 0, SMP_WORLD, 0, nullptr), SMP_ERR_INVALID_ARGUMENT, "buf");
    EXPECT_ERR(smp_recv(a, 1, SMP_INT8, -5, SMP_PP_GROUP, 0, nullptr), SMP_ERR_INVALID_ARGUMENT, "peer");
    EXPECT_ERR(smp_recv(a, 1, bad_dtype, 0, SMP_WORLD, 0, nullptr), SMP_ERR_INVALID_ARGUMENT, "dtype");
    EXPECT_ERR(smp_isend(a, 1, SMP_INT8, 0, SMP_WORLD, 0, nullptr, nullptr), SMP_ERR_INVALID_ARGUMENT, "request");
    EXPECT_ERR(smp_irecv(a, 1, SMP_INT8, 0, SMP_WORLD, -3, nullptr, &req), SMP_ERR_INVALID_ARGUMENT, "tag");
    EXPECT_ERR(smp_iallreduce(a, b, 1, SMP_INT8, bad_op, SMP_WORLD, nullptr, &req), SMP_ERR_INVALID_ARGUMENT, "op");
    EXPECT_ERR(smp_iallreduce(a, b, 1, SMP_INT8, SMP_SUM, SMP_WORLD, nullptr, nullptr), SMP_ERR_INVALID_ARGUMENT,
               "request");
    EXPECT_ERR(smp_ireduce_scatter(nullptr, b, 1, SMP_INT8, SMP_SUM, SMP_WORLD, nullptr, &req),
               SMP_ERR_INVALID_ARGUMENT, "sendbuf");
    EXPECT_ERR(smp_iallgather(a, b, 1, bad_dtype, SMP_WORLD, nullptr, &req), SMP_ERR_INVALID_ARGUMENT, "dtype");
    EXPECT_ERR(smp_wait(nullptr), SMP_ERR_INVALID_ARGUMENT, "request");
    int done = 0;
    EXPECT_ERR(smp_test(nullptr, &done), SMP_ERR_INVALID_ARGUMENT, "request");
    EXPECT_EQ(req, nullptr);  // no request was handed out by a failed call
  }
  // Had any bad call communicated, the other ranks would not match it.
  EXPECT_EQ(smp_barrier(SMP_WORLD), SMP_SUCCESS);
}

TEST(Lifecycle, CountZeroAllowsNullPointers) {
  std::vector<size_t> zeros(static_cast<size_t>(g_size), 0);
  EXPECT_EQ(smp_allreduce(nullptr, nullptr, 0, SMP_FLOAT16, SMP_AVG, SMP_WORLD, nullptr), SMP_SUCCESS);
  EXPECT_EQ(smp_reduce_scatter(nullptr, nullptr, 0, SMP_INT64, SMP_PROD, SMP_WORLD, nullptr), SMP_SUCCESS);
  EXPECT_EQ(smp_allgather(nullptr, nullptr, 0, SMP_INT8, SMP_WORLD, nullptr), SMP_SUCCESS);
  EXPECT_EQ(smp_broadcast(nullptr, 0, SMP_FLOAT64, 0, SMP_WORLD, nullptr), SMP_SUCCESS);
  EXPECT_EQ(smp_gatherv(nullptr, 0, nullptr, zeros.data(), SMP_UINT8, 0, SMP_WORLD, nullptr), SMP_SUCCESS)
      << smp_last_error();
  const int peer = (g_rank + 1) % g_size, from = (g_rank + g_size - 1) % g_size;
  smp_request_t s = nullptr, r = nullptr;
  ASSERT_EQ(smp_irecv(nullptr, 0, SMP_INT32, from, SMP_WORLD, 5, nullptr, &r), SMP_SUCCESS);
  ASSERT_EQ(smp_isend(nullptr, 0, SMP_INT32, peer, SMP_WORLD, 5, nullptr, &s), SMP_SUCCESS);
  EXPECT_EQ(smp_wait(s), SMP_SUCCESS);
  EXPECT_EQ(smp_wait(r), SMP_SUCCESS);
}

TEST(Lifecycle, ShortMessageIsReported) {
  if (g_size < 2) return;
  int v[4] = {1, 2, 3, 4};
  if (g_rank == 0) {
    EXPECT_EQ(smp_send(v, 2, SMP_INT32, 1, SMP_WORLD, 9, nullptr), SMP_SUCCESS);
  } else if (g_rank == 1) {
    EXPECT_ERR(smp_recv(v, 4, SMP_INT32, 0, SMP_WORLD, 9, nullptr), SMP_ERR_INVALID_ARGUMENT, "shorter");
  }
}

TEST(Lifecycle, FinalizeRefusesWhilePointToPointIsPending) {
  int v = 7, w = 0;
  smp_request_t s = nullptr, r = nullptr;
  ASSERT_EQ(smp_isend(&v, 1, SMP_INT32, g_rank, SMP_WORLD, 3, nullptr, &s), SMP_SUCCESS);
  EXPECT_ERR(smp_finalize(), SMP_ERR_INVALID_ARGUMENT, "smp_wait");
  ASSERT_EQ(smp_irecv(&w, 1, SMP_INT32, g_rank, SMP_WORLD, 3, nullptr, &r), SMP_SUCCESS);
  EXPECT_EQ(smp_wait(r), SMP_SUCCESS);
  EXPECT_EQ(smp_wait(s), SMP_SUCCESS);
  EXPECT_EQ(w, 7);
}

TEST(Lifecycle, CallsAfterFinalizeAreRefused) {
  ASSERT_EQ(smp_finalize(), SMP_SUCCESS) << smp_last_error();
  int r = 0;
  EXPECT_ERR(smp_size(SMP_WORLD, &r), SMP_ERR_NOT_INITIALIZED, "smp_init");
  EXPECT_ERR(smp_barrier(SMP_WORLD), SMP_ERR_NOT_INITIALIZED, "not initialized");
  EXPECT_ERR(smp_local_rank(&r), SMP_ERR_NOT_INITIALIZED, "not initialized");
  EXPECT_ERR(smp_device(&r), SMP_ERR_NOT_INITIALIZED, "not initialized");
  EXPECT_ERR(smp_finalize(), SMP_ERR_NOT_INITIALIZED, "not initialized");
  // MPI cannot start twice in one process: a clear error, not a crash.
  EXPECT_ERR(smp_init(nullptr), SMP_ERR_BACKEND, "finalized");
}

}  // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::GTEST_FLAG(shuffle) = false;  // the tests walk one lifetime in order
  return RUN_ALL_TESTS();
}
