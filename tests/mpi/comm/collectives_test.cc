// Every collective x dtype x op x count x group, checked on every rank
// against the reference of reference.h. The layout (pp, tp, placement)
// comes from the environment the meson test sets, so the same binary runs
// under several layouts and rank counts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "mpi_main.h"
#include "reference.h"
#include "topo/layout.h"

namespace smp::test {
namespace {

const smp_dtype_t kDTypes[] = {SMP_FLOAT32, SMP_FLOAT64, SMP_FLOAT16, SMP_BFLOAT16,
                               SMP_INT8,    SMP_UINT8,   SMP_INT32,   SMP_INT64};
const smp_op_t kOps[] = {SMP_SUM, SMP_AVG, SMP_MAX, SMP_MIN, SMP_PROD};
const smp_group_t kGroups[] = {SMP_WORLD, SMP_PP_GROUP, SMP_TP_GROUP,
                               SMP_DP_GROUP, SMP_RDP_GROUP, SMP_MP_GROUP};

// The world as the test computes it by itself (pure layout math), to check
// that the library's groups hold the right members.
struct World {
  int rank = 0, size = 1;
  topo::Layout layout{1, 1, 1};
  World() {
    smp_rank(SMP_WORLD, &rank);
    smp_size(SMP_WORLD, &size);
    const char *pp = std::getenv("SMP_PP_SIZE"), *tp = std::getenv("SMP_TP_SIZE");
    const char *pl = std::getenv("SMP_PLACEMENT");
    layout = topo::Layout(size, pp ? std::atoi(pp) : 1, tp ? std::atoi(tp) : 1,
                          pl ? topo::Placement::parse(pl) : topo::Placement());
  }
  std::vector<int> members(smp_group_t g) const { return layout.group_members(static_cast<topo::Group>(g), rank); }
};

const World &world() {
  static World w;
  return w;
}

uint32_t g_seed = 1;

using Param = std::tuple<smp_dtype_t, smp_op_t, size_t>;

class Reduce : public ::testing::TestWithParam<Param> {};

TEST_P(Reduce, AllreduceAndReduceScatterMatchReference) {
  const auto [t, op, count] = GetParam();
  // Large counts: two groups are enough (the reference costs most here).
  const std::vector<smp_group_t> groups =
      count > 100000 ? std::vector<smp_group_t>{SMP_WORLD, SMP_DP_GROUP}
                     : std::vector<smp_group_t>(std::begin(kGroups), std::end(kGroups));
  std::vector<double> vals;
  for (smp_group_t g : groups) {
    const std::vector<int> m = world().members(g);
    const int n = static_cast<int>(m.size());
    int r = -1, s = -1;
    ASSERT_EQ(smp_rank(g, &r), SMP_SUCCESS);
    ASSERT_EQ(smp_size(g, &s), SMP_SUCCESS);
    ASSERT_EQ(s, n) << "group " << g;
    ASSERT_EQ(m[static_cast<size_t>(r)], world().rank) << "group " << g;
    const uint32_t seed = g_seed++;
    const std::string where = dtype_label(t) + " " + op_label(op) + " count " +
                              std::to_string(count) + " group " + std::to_string(g);
    auto expect_reduced = [&](const Buf &out, size_t n_out, size_t first, const char *what) {
      size_t bad = 0;
      for (size_t i = 0; i < n_out; ++i) {
        vals.clear();
        for (int w : m) vals.push_back(input_value(w, seed, first + i, op, t));
        const double want = reduce_ref(vals, op, t);
        if (out.at(i) != want && bad++ < 3)
          ADD_FAILURE() << what << " " << where << ": element " << i << " is " << out.at(i)
                        << ", expected " << want;
      }
      EXPECT_EQ(bad, 0u) << what << " " << where;
    };

    // allreduce, out of place and in place.
    Buf in(count, t), out(count, t), inplace(count, t);
    for (size_t i = 0; i < count; ++i) {
      in.set(i, input_value(world().rank, seed, i, op, t));
      inplace.set(i, input_value(world().rank, seed, i, op, t));
    }
    EXPECT_EQ(smp_allreduce(in.data(), out.data(), count, t, op, g, nullptr), SMP_SUCCESS) << smp_last_error();
    expect_reduced(out, count, 0, "allreduce");
    EXPECT_EQ(smp_allreduce(inplace.data(), inplace.data(), count, t, op, g, nullptr), SMP_SUCCESS);
    expect_reduced(inplace, count, 0, "allreduce in place");

    // reduce_scatter: recvcount = count (the input is n * count long).
    Buf rs_in(count * n, t), rs_out(count, t);
    for (size_t i = 0; i < count * n; ++i) rs_in.set(i, input_value(world().rank, seed, i, op, t));
    Buf rs_inplace = rs_in;
    EXPECT_EQ(smp_reduce_scatter(rs_in.data(), rs_out.data(), count, t, op, g, nullptr), SMP_SUCCESS)
        << smp_last_error();
    expect_reduced(rs_out, count, static_cast<size_t>(r) * count, "reduce_scatter");
    void *own = static_cast<unsigned char *>(rs_inplace.data()) + static_cast<size_t>(r) * count * esize(t);
    EXPECT_EQ(smp_reduce_scatter(rs_inplace.data(), own, count, t, op, g, nullptr), SMP_SUCCESS)
        << smp_last_error();
    Buf own_block(count, t);
    if (count) std::memcpy(own_block.data(), own, count * esize(t));
    expect_reduced(own_block, count, static_cast<size_t>(r) * count, "reduce_scatter in place");
  }
}

std::string ParamName(const ::testing::TestParamInfo<Param> &info) {
  const auto [t, op, count] = info.param;
  return dtype_label(t) + "_" + op_label(op) + "_" + std::to_string(count);
}

INSTANTIATE_TEST_SUITE_P(Small, Reduce,
                         ::testing::Combine(::testing::ValuesIn(kDTypes), ::testing::ValuesIn(kOps),
                                            ::testing::Values(size_t{0}, size_t{1}, size_t{7}, size_t{1000})),
                         ParamName);
// Large counts for the paths that segment (pairwise reduce-scatter) and
// the half types (8-rank runs filter them out: 2 cores).
INSTANTIATE_TEST_SUITE_P(Large, Reduce,
                         ::testing::Values(Param{SMP_FLOAT32, SMP_SUM, size_t{1} << 20},
                                           Param{SMP_BFLOAT16, SMP_SUM, size_t{1} << 20},
                                           Param{SMP_INT32, SMP_AVG, (size_t{1} << 18) + 13},
                                           Param{SMP_FLOAT16, SMP_MAX, (size_t{1} << 18) + 13}),
                         ParamName);

class Move : public ::testing::TestWithParam<std::tuple<smp_dtype_t, size_t>> {};

TEST_P(Move, AllgatherBroadcastGathervMatchReference) {
  const auto [t, count] = GetParam();
  const smp_op_t op = SMP_SUM;  // only picks the input values
  for (smp_group_t g : kGroups) {
    const std::vector<int> m = world().members(g);
    const int n = static_cast<int>(m.size());
    int r = 0;
    smp_rank(g, &r);
    const uint32_t seed = g_seed++;
    const std::string where = dtype_label(t) + " count " + std::to_string(count) + " group " + std::to_string(g);

    // allgather, out of place and in place.
    Buf mine(count, t), all(count * n, t), all_inplace(count * n, t);
    for (size_t i = 0; i < count; ++i) {
      mine.set(i, input_value(world().rank, seed, i, op, t));
      all_inplace.set(static_cast<size_t>(r) * count + i, input_value(world().rank, seed, i, op, t));
    }
    EXPECT_EQ(smp_allgather(mine.data(), all.data(), count, t, g, nullptr), SMP_SUCCESS) << smp_last_error();
    void *own = static_cast<unsigned char *>(all_inplace.data()) + static_cast<size_t>(r) * count * esize(t);
    EXPECT_EQ(smp_allgather(own, all_inplace.data(), count, t, g, nullptr), SMP_SUCCESS) << smp_last_error();
    size_t bad = 0;
    for (int j = 0; j < n; ++j)
      for (size_t i = 0; i < count; ++i) {
        const double want = input_value(m[static_cast<size_t>(j)], seed, i, op, t);
        bad += all.at(static_cast<size_t>(j) * count + i) != want;
        bad += all_inplace.at(static_cast<size_t>(j) * count + i) != want;
      }
    EXPECT_EQ(bad, 0u) << "allgather " << where;

    // broadcast from every root.
    for (int root = 0; root < n; ++root) {
      Buf b(count, t);
      for (size_t i = 0; i < count; ++i)
        b.set(i, r == root ? input_value(world().rank, seed + 7, i, op, t) : 99);
      EXPECT_EQ(smp_broadcast(b.data(), count, t, root, g, nullptr), SMP_SUCCESS) << smp_last_error();
      bad = 0;
      for (size_t i = 0; i < count; ++i) bad += b.at(i) != input_value(m[static_cast<size_t>(root)], seed + 7, i, op, t);
      EXPECT_EQ(bad, 0u) << "broadcast root " << root << " " << where;
    }

    // gatherv to the last rank: rank j sends count + j % 3 elements (0 for some).
    const int root = n - 1;
    std::vector<size_t> counts(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) counts[static_cast<size_t>(j)] = count ? count + static_cast<size_t>(j % 3) : static_cast<size_t>(j % 2);
    const size_t total = std::accumulate(counts.begin(), counts.end(), size_t{0});
    Buf send(counts[static_cast<size_t>(r)], t), gathered(total, t);
    for (size_t i = 0; i < counts[static_cast<size_t>(r)]; ++i) send.set(i, input_value(world().rank, seed + 9, i, op, t));
    EXPECT_EQ(smp_gatherv(send.data(), counts[static_cast<size_t>(r)], gathered.data(), counts.data(), t, root, g, nullptr),
              SMP_SUCCESS)
        << smp_last_error();
    if (r == root) {
      bad = 0;
      size_t off = 0;
      for (int j = 0; j < n; ++j)
        for (size_t i = 0; i < counts[static_cast<size_t>(j)]; ++i)
          bad += gathered.at(off++) != input_value(m[static_cast<size_t>(j)], seed + 9, i, op, t);
      EXPECT_EQ(bad, 0u) << "gatherv " << where;
    }
    EXPECT_EQ(smp_barrier(g), SMP_SUCCESS);
  }
}

INSTANTIATE_TEST_SUITE_P(All, Move,
                         ::testing::Combine(::testing::ValuesIn(kDTypes),
                                            ::testing::Values(size_t{0}, size_t{1}, size_t{7}, size_t{1000},
                                                              size_t{100003})),
                         [](const auto &info) {
                           return dtype_label(std::get<0>(info.param)) + "_" +
                                  std::to_string(std::get<1>(info.param));
                         });

// Integer sums wrap around (two's complement), as smp.h promises, at every
// length: Open MPI's AVX reduction saturates 8-bit sums on some lengths
// (4097 on 2 ranks, open-mpi/ompi#8045). Every rank's values are large
// enough that any sum over two or more ranks overflows.
TEST(Wrap, IntegerSumsWrapAround) {
  const int n = world().size;
  for (size_t count : {size_t{1}, size_t{64}, size_t{4097}, size_t{65537}}) {
    std::vector<uint8_t> u(count), us(count);
    std::vector<int8_t> s(count), ss(count);
    std::vector<int32_t> w(count), ws(count);
    for (size_t i = 0; i < count; ++i) {
      u[i] = static_cast<uint8_t>(200 + (i + static_cast<size_t>(world().rank)) % 50);
      s[i] = static_cast<int8_t>(100 + static_cast<int>(i % 27));
      w[i] = 2000000000 - static_cast<int32_t>(i % 1000);
    }
    ASSERT_EQ(smp_allreduce(u.data(), us.data(), count, SMP_UINT8, SMP_SUM, SMP_WORLD, nullptr), SMP_SUCCESS);
    ASSERT_EQ(smp_allreduce(s.data(), ss.data(), count, SMP_INT8, SMP_SUM, SMP_WORLD, nullptr), SMP_SUCCESS);
    ASSERT_EQ(smp_allreduce(w.data(), ws.data(), count, SMP_INT32, SMP_SUM, SMP_WORLD, nullptr), SMP_SUCCESS);
    size_t bad = 0;
    for (size_t i = 0; i < count; ++i) {
      uint64_t su = 0;
      for (int r = 0; r < n; ++r) su += 200 + (i + static_cast<size_t>(r)) % 50;
      bad += us[i] != static_cast<uint8_t>(su);
      bad += static_cast<uint8_t>(ss[i]) != static_cast<uint8_t>(static_cast<uint64_t>(n) * (100 + i % 27));
      bad += static_cast<uint32_t>(ws[i]) !=
             static_cast<uint32_t>(static_cast<uint64_t>(n) * static_cast<uint64_t>(2000000000 - static_cast<int64_t>(i % 1000)));
    }
    EXPECT_EQ(bad, 0u) << "count " << count;
  }
}

// Non-blocking collectives on several groups at once, waited in the
// reverse order (and one polled with smp_test), against the reference.
TEST(NonBlocking, OverlappedOpsCompleteInAnyWaitOrder) {
  const size_t count = 4099;
  const smp_dtype_t t = SMP_FLOAT32;
  const uint32_t seed = g_seed++;
  struct Pending { smp_request_t req; smp_group_t g; int kind; Buf in, out; };
  std::vector<Pending> ops;
  ops.reserve(18);
  for (smp_group_t g : kGroups) {
    const int n = static_cast<int>(world().members(g).size());
    for (int kind = 0; kind < 3; ++kind) {
      const size_t in_n = kind == 1 ? count * n : count;
      const size_t out_n = kind == 2 ? count * n : count;
      ops.push_back({nullptr, g, kind, Buf(in_n, t), Buf(out_n, t)});
      Pending &p = ops.back();
      for (size_t i = 0; i < in_n; ++i) p.in.set(i, input_value(world().rank, seed + g, i, SMP_SUM, t));
      smp_status_t st = kind == 0   ? smp_iallreduce(p.in.data(), p.out.data(), count, t, SMP_SUM, g, nullptr, &p.req)
                        : kind == 1 ? smp_ireduce_scatter(p.in.data(), p.out.data(), count, t, SMP_SUM, g, nullptr, &p.req)
                                    : smp_iallgather(p.in.data(), p.out.data(), count, t, g, nullptr, &p.req);
      EXPECT_EQ(st, SMP_SUCCESS) << smp_last_error();
    }
  }
  // Poll the first one until done, wait for the rest last to first.
  int done = 0;
  while (!done) ASSERT_EQ(smp_test(ops[0].req, &done), SMP_SUCCESS) << smp_last_error();
  for (size_t k = ops.size(); k-- > 1;) EXPECT_EQ(smp_wait(ops[k].req), SMP_SUCCESS) << smp_last_error();
  for (Pending &p : ops) {
    const std::vector<int> m = world().members(p.g);
    int r = 0;
    smp_rank(p.g, &r);
    size_t bad = 0;
    if (p.kind == 2) {
      for (size_t j = 0; j < m.size(); ++j)
        for (size_t i = 0; i < count; ++i)
          bad += p.out.at(j * count + i) != input_value(m[j], seed + p.g, i, SMP_SUM, t);
    } else {
      const size_t first = p.kind == 1 ? static_cast<size_t>(r) * count : 0;
      for (size_t i = 0; i < count; ++i) {
        double want = 0;
        for (int w : m) want += input_value(w, seed + p.g, first + i, SMP_SUM, t);
        bad += p.out.at(i) != want;
      }
    }
    EXPECT_EQ(bad, 0u) << "kind " << p.kind << " group " << p.g;
  }
}

// A blocking collective may run while non-blocking ones are in flight on
// the same group: they use separate communicators and never cross-match.
TEST(NonBlocking, BlockingCollectiveWhileNonBlockingPending) {
  const size_t count = 1 << 16;
  std::vector<float> a(count, 1.0f), b(count), c(count, 2.0f), d(count);
  smp_request_t req = nullptr;
  ASSERT_EQ(smp_iallreduce(a.data(), b.data(), count, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr, &req), SMP_SUCCESS);
  ASSERT_EQ(smp_allreduce(c.data(), d.data(), count, SMP_FLOAT32, SMP_MAX, SMP_WORLD, nullptr), SMP_SUCCESS);
  ASSERT_EQ(smp_wait(req), SMP_SUCCESS) << smp_last_error();
  EXPECT_EQ(b[count - 1], static_cast<float>(world().size));
  EXPECT_EQ(d[0], 2.0f);
}

}  // namespace
}  // namespace smp::test

int main(int argc, char **argv) { return smp::test::run_all_ranks(argc, argv); }
