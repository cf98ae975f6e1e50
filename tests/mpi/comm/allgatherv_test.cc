// Communicator::allgatherv under mpirun (np 2, 3, 4; a tiny
// SMP_MAX_CHUNK_ELEMENTS for the chunked path; SMP_CHECK on): unequal
// counts including zero, in place and out of place, against an expectation
// every rank builds on its own from (rank, index); argument errors before
// any communication; under SMP_CHECK, recvcounts that disagree with what a
// rank sends become the same PeerFailed on every rank.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/context.h"
#include "common/error.h"

namespace smp::comm {
namespace {

Communicator &world() { return Context::get().group(topo::Group::World); }

// Element i of rank r's block, distinct per (pattern, rank, index) and
// exact in every dtype tested.
int64_t value(int pattern, int r, size_t i) { return (pattern * 7 + r * 31 + static_cast<int64_t>(i) * 3) % 120; }

void put(void *p, size_t i, DType t, int64_t v) {
  switch (t) {
    case DType::I32: static_cast<int32_t *>(p)[i] = static_cast<int32_t>(v); break;
    case DType::F64: static_cast<double *>(p)[i] = static_cast<double>(v); break;
    case DType::U8: static_cast<uint8_t *>(p)[i] = static_cast<uint8_t>(v); break;
    case DType::I64: static_cast<int64_t *>(p)[i] = v; break;
    default: FAIL() << "dtype not used here";
  }
}

// Count patterns over n ranks, each with zeros somewhere.
std::vector<std::vector<size_t>> patterns(int n) {
  std::vector<std::vector<size_t>> out;
  std::vector<size_t> c(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) c[r] = r % 2 == 1 ? 0 : 5 + 3 * static_cast<size_t>(r);  // odd ranks send nothing
  out.push_back(c);
  for (int r = 0; r < n; ++r) c[r] = r == 0 ? 0 : 11 * static_cast<size_t>(r) + 1;  // rank 0 sends nothing
  out.push_back(c);
  for (int r = 0; r < n; ++r) c[r] = r == n - 1 ? 23 : 0;  // only the last rank sends
  out.push_back(c);
  out.push_back(std::vector<size_t>(static_cast<size_t>(n), 0));  // nobody sends
  for (int r = 0; r < n; ++r) c[r] = 1 + static_cast<size_t>(r);
  out.push_back(c);
  return out;
}

TEST(Allgatherv, UnequalCountsInAndOutOfPlace) {
  Communicator &c = world();
  const int n = c.size(), me = c.rank();
  int pattern = 0;
  for (const auto &counts : patterns(n)) {
    ++pattern;
    size_t total = 0, before = 0;
    for (int r = 0; r < n; ++r) {
      if (r < me) before += counts[r];
      total += counts[r];
    }
    for (DType t : {DType::I32, DType::F64, DType::U8, DType::I64}) {
      const size_t es = dtype_size(t);
      std::vector<char> expect(total * es + 1), send(counts[me] * es + 1);
      size_t at = 0;
      for (int r = 0; r < n; ++r)
        for (size_t i = 0; i < counts[r]; ++i) put(expect.data(), at++, t, value(pattern, r, i));
      for (size_t i = 0; i < counts[me]; ++i) put(send.data(), i, t, value(pattern, me, i));
      const std::string where = "pattern " + std::to_string(pattern) + " dtype " + dtype_name(t);

      std::vector<char> out(total * es + 1, 0x5a);
      c.allgatherv(send.data(), counts[me], out.data(), counts.data(), t);
      EXPECT_EQ(std::memcmp(out.data(), expect.data(), total * es), 0) << "out of place, " << where;
      EXPECT_EQ(out[total * es], 0x5a) << "wrote past the end, " << where;

      std::vector<char> inplace(total * es + 1, 0x5a);
      std::memcpy(inplace.data() + before * es, send.data(), counts[me] * es);
      c.allgatherv(inplace.data() + before * es, counts[me], inplace.data(), counts.data(), t);
      EXPECT_EQ(std::memcmp(inplace.data(), expect.data(), total * es), 0) << "in place, " << where;
    }
  }
}

// The argument checks throw before communicating, so every rank may fail
// on its own.
TEST(Allgatherv, ArgumentErrors) {
  Communicator &c = world();
  const int n = c.size(), me = c.rank();
  std::vector<size_t> counts(static_cast<size_t>(n), 4);
  std::vector<int32_t> send(4), recv(4 * static_cast<size_t>(n));
  auto message = [&](auto &&call) -> std::string {
    try {
      call();
    } catch (const Error &e) {
      EXPECT_EQ(e.status(), Status::InvalidArgument);
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message([&] { c.allgatherv(send.data(), 4, recv.data(), nullptr, DType::I32); }),
            "allgatherv: recvcounts is NULL but count is 1");
  EXPECT_EQ(message([&] { c.allgatherv(send.data(), 3, recv.data(), counts.data(), DType::I32); }),
            "allgatherv: recvcounts[" + std::to_string(me) + "] is 4 but this rank's sendcount is 3");
  EXPECT_EQ(message([&] { c.allgatherv(send.data(), 4, nullptr, counts.data(), DType::I32); }),
            "allgatherv: recvbuf is NULL but count is " + std::to_string(4 * n));
  EXPECT_EQ(message([&] { c.allgatherv(recv.data() + 1, 4, recv.data(), counts.data(), DType::I32); })
                .rfind("allgatherv: sendbuf and recvbuf overlap", 0),
            0u);
  EXPECT_EQ(message([&] { c.allgatherv(send.data(), 4, recv.data(), counts.data(), static_cast<DType>(99)); })
                .rfind("allgatherv: ", 0),
            0u);
}

// SMP_CHECK (only the check run includes this test; without the check
// the call would hang or fail at random): rank 0 believes the last rank sends one more element than it
// does; every rank reports the same disagreement.
TEST(Allgatherv, CheckedCountsDisagree) {
  ASSERT_TRUE(Context::get().check()) << "run only with SMP_CHECK=1 (the meson runs filter it)";
  Communicator &c = world();
  const int n = c.size(), me = c.rank();
  std::vector<size_t> counts(static_cast<size_t>(n), 2);
  if (me == 0) counts[static_cast<size_t>(n - 1)] = 3;
  std::vector<int32_t> send(2), recv(2 * static_cast<size_t>(n) + 1);
  try {
    c.allgatherv(send.data(), 2, recv.data(), counts.data(), DType::I32);
    ADD_FAILURE() << "no error";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::PeerFailed);
    EXPECT_EQ(std::string(e.what()), "SMP_CHECK: allgatherv on WORLD: rank " + std::to_string(n - 1) +
                                         " sends 2 elements but rank 0's recvcounts[" +
                                         std::to_string(n - 1) + "] is 3");
  }
}

}  // namespace
}  // namespace smp::comm

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  smp::comm::Context::init();
  const int rc = RUN_ALL_TESTS();
  int any = rc != 0;
  smp::comm::world().allreduce(&any, &any, 1, smp::DType::I32, smp::comm::ReduceOp::Max);
  smp::comm::Context::finalize();
  return any;
}
