// The C API's later additions, through libsmp, on every rank against an
// independent reference (tests/mpi/comm/reference.h): smp_reduce,
// smp_scatterv, smp_alltoallv, smp_recv_any, and groups of any world ranks
// (smp_group_create / smp_group_destroy) used by every kind of call. Run at
// 2, 3 and 4 ranks; the Check.* tests only under SMP_CHECK=1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "mpi_main.h"
#include "reference.h"

namespace smp::test {
namespace {

const smp_dtype_t kDTypes[] = {SMP_FLOAT32, SMP_FLOAT64, SMP_FLOAT16, SMP_BFLOAT16,
                               SMP_INT8,    SMP_UINT8,   SMP_INT32,   SMP_INT64};
const smp_op_t kOps[] = {SMP_SUM, SMP_AVG, SMP_MAX, SMP_MIN, SMP_PROD};
const size_t kCounts[] = {0, 1, 7, 1001};

int world_rank() { int r = 0; smp_rank(SMP_WORLD, &r); return r; }
int world_size() { int s = 0; smp_size(SMP_WORLD, &s); return s; }
std::string err() { return smp_last_error(); }
bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

// A group under test: its handle and members (world ranks, group order).
struct G {
  smp_group_t handle;
  std::vector<int> members;
  int rank() const {
    return static_cast<int>(std::find(members.begin(), members.end(), world_rank()) - members.begin());
  }
};

// WORLD, and a created group of every world rank in reverse order (group
// rank i = world rank size-1-i), which every rank belongs to.
std::vector<G> groups_with_me() {
  const int n = world_size();
  std::vector<int> rev(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) rev[static_cast<size_t>(i)] = n - 1 - i;
  static smp_group_t reversed = [&] {
    smp_group_t g = SMP_WORLD;
    EXPECT_EQ(smp_group_create(rev.data(), n, &g), SMP_SUCCESS) << err();
    return g;
  }();
  std::vector<int> all(static_cast<size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  return {G{SMP_WORLD, all}, G{reversed, rev}};
}

uint32_t g_seed = 7;

TEST(Reduce, EveryDtypeOpCountRootMatchesReference) {
  for (const G &g : groups_with_me()) {
    const int n = static_cast<int>(g.members.size()), me = g.rank();
    for (smp_dtype_t t : kDTypes)
      for (smp_op_t op : kOps)
        for (size_t count : kCounts) {
          const uint32_t seed = g_seed++;
          const int root = static_cast<int>(seed % static_cast<uint32_t>(n));
          const bool in_place = seed % 2 == 0;
          Buf in(count, t), outb(count, t);
          for (size_t i = 0; i < count; ++i) in.set(i, input_value(world_rank(), seed, i, op, t));
          void *recv = me == root ? (in_place ? in.data() : outb.data()) : nullptr;
          ASSERT_EQ(smp_reduce(in.data(), recv, count, t, op, root, g.handle, nullptr), SMP_SUCCESS)
              << err() << " dtype " << dtype_label(t) << " op " << op_label(op) << " count " << count;
          if (me != root) {
            // A non-root's input is left alone, and nothing else written.
            for (size_t i = 0; i < count; ++i)
              ASSERT_EQ(in.at(i), input_value(world_rank(), seed, i, op, t));
            continue;
          }
          const Buf &got = in_place ? in : outb;
          std::vector<double> vals;
          int bad = 0;
          for (size_t i = 0; i < count; ++i) {
            vals.clear();
            for (int w : g.members) vals.push_back(input_value(w, seed, i, op, t));
            const double want = reduce_ref(vals, op, t);
            if (got.at(i) != want && bad++ < 3)
              ADD_FAILURE() << "reduce " << dtype_label(t) << " " << op_label(op) << " count " << count
                            << " root " << root << (in_place ? " in place" : "") << " group " << g.handle
                            << ": element " << i << " is " << got.at(i) << ", expected " << want;
          }
          EXPECT_EQ(got.bytes.back(), 0xA5) << "reduce wrote past count";
        }
  }
}

// Uneven counts with zeros: rank r's count depends on (r, seed).
size_t uneven(int r, uint32_t seed) { return (static_cast<size_t>(r) * 3 + seed) % 5 * (seed % 3 == 0 ? 211 : 1); }

TEST(Scatterv, UnevenCountsEveryDtypeAndRoot) {
  for (const G &g : groups_with_me()) {
    const int n = static_cast<int>(g.members.size()), me = g.rank();
    for (smp_dtype_t t : kDTypes)
      for (int root = 0; root < n; ++root) {
        const uint32_t seed = g_seed++;
        std::vector<size_t> counts(static_cast<size_t>(n));
        for (int r = 0; r < n; ++r) counts[static_cast<size_t>(r)] = uneven(r, seed);
        const size_t total = std::accumulate(counts.begin(), counts.end(), size_t{0});
        Buf in(total, t), out(counts[static_cast<size_t>(me)], t);
        if (me == root)
          for (size_t i = 0; i < total; ++i) in.set(i, input_value(root, seed, i, SMP_SUM, t));
        ASSERT_EQ(smp_scatterv(me == root ? in.data() : nullptr, me == root ? counts.data() : nullptr,
                               out.data(), counts[static_cast<size_t>(me)], t, root, g.handle, nullptr),
                  SMP_SUCCESS)
            << err();
        size_t first = 0;
        for (int r = 0; r < me; ++r) first += counts[static_cast<size_t>(r)];
        for (size_t i = 0; i < counts[static_cast<size_t>(me)]; ++i)
          ASSERT_EQ(out.at(i), input_value(root, seed, first + i, SMP_SUM, t))
              << "scatterv " << dtype_label(t) << " root " << root << " element " << i;
        EXPECT_EQ(out.bytes.back(), 0xA5) << "scatterv wrote past recvcount";
      }
  }
}

TEST(Scatterv, InPlaceOnRoot) {
  const int n = world_size(), me = world_rank();
  std::vector<size_t> counts(static_cast<size_t>(n), 3);
  std::vector<int> buf(static_cast<size_t>(3 * n));
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<int>(i) + 100;
  int *recv = me == 0 ? buf.data() : buf.data() + 1;  // root: its own block of sendbuf
  ASSERT_EQ(smp_scatterv(buf.data(), counts.data(), recv, 3, SMP_INT32, 0, SMP_WORLD, nullptr), SMP_SUCCESS) << err();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(recv[i], 3 * me + i + 100);
}

// Rank r sends f(r, p) elements to rank p.
size_t a2a_count(int r, int p, uint32_t seed) { return (static_cast<size_t>(r) * 2 + p * 3 + seed) % 4 * (seed % 4 == 0 ? 97 : 1); }
double a2a_value(int r, int p, size_t j, smp_dtype_t t) {
  const int v = static_cast<int>((r * 7 + p * 13 + j * 3) % 17);
  return t == SMP_UINT8 ? v : v - 8;
}

TEST(Alltoallv, UnevenCountsGapsAndReversedDisplacements) {
  for (const G &g : groups_with_me()) {
    const int n = static_cast<int>(g.members.size()), me = g.rank();
    for (smp_dtype_t t : kDTypes)
      for (int rep = 0; rep < 4; ++rep) {
        const uint32_t seed = g_seed++;
        std::vector<size_t> sc(n), sd(n), rc(n), rd(n);
        size_t s_end = 0, r_end = 0;
        for (int p = 0; p < n; ++p) {
          sc[p] = a2a_count(me, p, seed);
          rc[p] = a2a_count(p, me, seed);
          sd[p] = s_end + 1;  // one element gap before each block
          s_end = sd[p] + sc[p];
        }
        for (int p = n - 1; p >= 0; --p) {  // receive blocks in reverse order
          rd[p] = r_end;
          r_end += rc[p] + 2;
        }
        Buf in(s_end, t), out(r_end, t);
        for (int p = 0; p < n; ++p)
          for (size_t j = 0; j < sc[p]; ++j) in.set(sd[p] + j, a2a_value(g.members[me], p, j, t));
        ASSERT_EQ(smp_alltoallv(in.data(), sc.data(), sd.data(), out.data(), rc.data(), rd.data(), t, g.handle,
                                nullptr),
                  SMP_SUCCESS)
            << err();
        for (int p = 0; p < n; ++p) {
          for (size_t j = 0; j < rc[p]; ++j)
            ASSERT_EQ(out.at(rd[p] + j), a2a_value(g.members[p], me, j, t))
                << "alltoallv " << dtype_label(t) << " from " << p << " element " << j;
          // The gap after each block is untouched.
          for (size_t b = 0; b < 2 * esize(t); ++b)
            ASSERT_EQ(out.bytes[(rd[p] + rc[p]) * esize(t) + b], 0xA5) << "alltoallv wrote into a gap";
        }
      }
  }
}

TEST(RecvAny, EveryOtherRankSendsOnceSourcesAndPayloads) {
  for (const G &g : groups_with_me()) {
    const int n = static_cast<int>(g.members.size()), me = g.rank();
    const int dest = n - 1;  // group rank
    const size_t count = 1003;
    if (me != dest) {
      std::vector<int64_t> msg(count);
      for (size_t i = 0; i < count; ++i) msg[i] = me * 100000 + static_cast<int64_t>(i);
      ASSERT_EQ(smp_send(msg.data(), count, SMP_INT64, dest, g.handle, 9, nullptr), SMP_SUCCESS) << err();
    } else {
      std::set<int> seen;
      for (int k = 0; k < n - 1; ++k) {
        std::vector<int64_t> msg(count, -1);
        int source = -7;
        ASSERT_EQ(smp_recv_any(msg.data(), count, SMP_INT64, g.handle, 9, &source, nullptr), SMP_SUCCESS) << err();
        ASSERT_TRUE(source >= 0 && source < n && source != dest) << "source " << source;
        EXPECT_TRUE(seen.insert(source).second) << "source " << source << " twice";
        for (size_t i = 0; i < count; ++i) ASSERT_EQ(msg[i], source * 100000 + static_cast<int64_t>(i));
      }
    }
    // count 0, from self.
    int source = -1;
    ASSERT_EQ(smp_send(nullptr, 0, SMP_FLOAT32, me, g.handle, 3, nullptr), SMP_SUCCESS) << err();
    ASSERT_EQ(smp_recv_any(nullptr, 0, SMP_FLOAT32, g.handle, 3, &source, nullptr), SMP_SUCCESS) << err();
    EXPECT_EQ(source, me);
  }
}

// Create a group of `ranks` where this rank is listed; check rank/size.
smp_group_t make(const std::vector<int> &ranks) {
  smp_group_t g = SMP_WORLD;
  EXPECT_EQ(smp_group_create(ranks.data(), static_cast<int>(ranks.size()), &g), SMP_SUCCESS) << err();
  EXPECT_GE(static_cast<int>(g), SMP_GROUP_USER_BASE);
  int r = -1, s = -1;
  EXPECT_EQ(smp_rank(g, &r), SMP_SUCCESS) << err();
  EXPECT_EQ(smp_size(g, &s), SMP_SUCCESS) << err();
  EXPECT_EQ(s, static_cast<int>(ranks.size()));
  EXPECT_EQ(ranks[static_cast<size_t>(r)], world_rank());
  return g;
}

// Every kind of call on a created group: allreduce, reduce_scatter,
// allgather, broadcast, gatherv, barrier, send/recv, isend/irecv, the
// non-blocking collectives.
void exercise(smp_group_t g, const std::vector<int> &m) {
  const int n = static_cast<int>(m.size());
  int me = -1;
  ASSERT_EQ(smp_rank(g, &me), SMP_SUCCESS);
  const int w = world_rank();
  int64_t sum = 0;
  for (int x : m) sum += x + 1;
  int64_t v = w + 1, got = 0;
  ASSERT_EQ(smp_allreduce(&v, &got, 1, SMP_INT64, SMP_SUM, g, nullptr), SMP_SUCCESS) << err();
  EXPECT_EQ(got, sum);
  std::vector<int32_t> all(n, -1);
  int32_t mine = w;
  ASSERT_EQ(smp_allgather(&mine, all.data(), 1, SMP_INT32, g, nullptr), SMP_SUCCESS) << err();
  for (int i = 0; i < n; ++i) EXPECT_EQ(all[i], m[i]) << "allgather: group order is world_ranks' order";
  std::vector<int32_t> rs(n, w), rsout(1, -1);
  ASSERT_EQ(smp_reduce_scatter(rs.data(), rsout.data(), 1, SMP_INT32, SMP_MAX, g, nullptr), SMP_SUCCESS) << err();
  EXPECT_EQ(rsout[0], *std::max_element(m.begin(), m.end()));
  int32_t b = me == n - 1 ? 4242 : 0;
  ASSERT_EQ(smp_broadcast(&b, 1, SMP_INT32, n - 1, g, nullptr), SMP_SUCCESS) << err();
  EXPECT_EQ(b, 4242);
  std::vector<size_t> counts(n, 1);
  std::vector<int32_t> gathered(n, -1);
  ASSERT_EQ(smp_gatherv(&mine, 1, me == 0 ? gathered.data() : nullptr, me == 0 ? counts.data() : nullptr, SMP_INT32, 0,
                        g, nullptr),
            SMP_SUCCESS)
      << err();
  if (me == 0) {
    for (int i = 0; i < n; ++i) EXPECT_EQ(gathered[i], m[i]);
  }
  ASSERT_EQ(smp_barrier(g), SMP_SUCCESS) << err();
  // A ring of sends: to the next group rank, from the previous.
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  int32_t out = w, in = -1;
  smp_request_t rq = nullptr, sq = nullptr;
  ASSERT_EQ(smp_irecv(&in, 1, SMP_INT32, prev, g, 1, nullptr, &rq), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_isend(&out, 1, SMP_INT32, next, g, 1, nullptr, &sq), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_wait(sq), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_wait(rq), SMP_SUCCESS) << err();
  EXPECT_EQ(in, m[prev]);
  if (n > 1) {
    if (me % 2 == 0) {
      if (me + 1 < n) {
        ASSERT_EQ(smp_send(&out, 1, SMP_INT32, me + 1, g, 2, nullptr), SMP_SUCCESS) << err();
      }
    } else {
      ASSERT_EQ(smp_recv(&in, 1, SMP_INT32, me - 1, g, 2, nullptr), SMP_SUCCESS) << err();
      EXPECT_EQ(in, m[me - 1]);
    }
  }
  int64_t iv = w + 1, ig = 0;
  std::vector<int32_t> ag(n, -1);
  smp_request_t r1 = nullptr, r2 = nullptr;
  ASSERT_EQ(smp_iallreduce(&iv, &ig, 1, SMP_INT64, SMP_SUM, g, nullptr, &r1), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_iallgather(&mine, ag.data(), 1, SMP_INT32, g, nullptr, &r2), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_wait(r1), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_wait(r2), SMP_SUCCESS) << err();
  EXPECT_EQ(ig, sum);
  for (int i = 0; i < n; ++i) EXPECT_EQ(ag[i], m[i]);
}

TEST(Groups, SubsetsOrdersOverlapsAndDestroy) {
  const int n = world_size(), w = world_rank();
  // World ranks {n-1, 0} (with n = 2: both, reversed), by those two ranks.
  if (w == n - 1 || w == 0) {
    const std::vector<int> m = {n - 1, 0};
    const smp_group_t g = make(m);
    exercise(g, m);
    ASSERT_EQ(smp_group_destroy(g), SMP_SUCCESS) << err();
    int s = 0;
    EXPECT_EQ(smp_size(g, &s), SMP_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(err(), "destroyed")) << err();
  }
  // {1} alone.
  if (w == 1) {
    const smp_group_t g = make({1});
    exercise(g, {1});
    float x = 3, y = 0;
    ASSERT_EQ(smp_reduce(&x, &y, 1, SMP_FLOAT32, SMP_SUM, 0, g, nullptr), SMP_SUCCESS) << err();
    EXPECT_EQ(y, 3);
    ASSERT_EQ(smp_group_destroy(g), SMP_SUCCESS) << err();
  }
  // Overlapping groups, created in different orders by different subsets:
  // A = every even rank, B = the ranks >= 1 in reverse; the ranks in both
  // create B first, the others their one group.
  std::vector<int> a, bm;
  for (int r = 0; r < n; r += 2) a.push_back(r);
  for (int r = n - 1; r >= 1; --r) bm.push_back(r);
  const bool in_a = w % 2 == 0, in_b = w >= 1;
  smp_group_t ga = SMP_WORLD, gb = SMP_WORLD;
  if (in_b) gb = make(bm);
  if (in_a) ga = make(a);
  // Both live: a rank in both uses both, interleaved.
  if (in_a) exercise(ga, a);
  if (in_b) exercise(gb, bm);
  if (in_a && in_b) {
    EXPECT_NE(static_cast<int>(ga), static_cast<int>(gb));
  }
  if (in_a) {
    EXPECT_EQ(smp_group_destroy(ga), SMP_SUCCESS) << err();
  }
  if (in_b) {
    EXPECT_EQ(smp_group_destroy(gb), SMP_SUCCESS) << err();
  }
  ASSERT_EQ(smp_barrier(SMP_WORLD), SMP_SUCCESS) << err();
  // A group created again after destroy gets a new handle, and works.
  std::vector<int> all(n);
  std::iota(all.begin(), all.end(), 0);
  const smp_group_t g2 = make(all);
  exercise(g2, all);
  // Pending non-blocking work completes before destroy returns.
  int64_t v = 1, got = 0;
  smp_request_t r = nullptr;
  ASSERT_EQ(smp_iallreduce(&v, &got, 1, SMP_INT64, SMP_SUM, g2, nullptr, &r), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_group_destroy(g2), SMP_SUCCESS) << err();
  EXPECT_EQ(got, n);
  ASSERT_EQ(smp_wait(r), SMP_SUCCESS) << err();
}

TEST(Errors, BadArgumentsAreClearStatuses) {
  const int n = world_size(), w = world_rank();
  smp_group_t g = SMP_WORLD;
  const int dup[2] = {w, w}, out_of_range[2] = {w, n}, negative[1] = {-1};
  auto expect_invalid = [&](smp_status_t st, const char *part) {
    EXPECT_EQ(st, SMP_ERR_INVALID_ARGUMENT) << part;
    EXPECT_TRUE(contains(err(), part)) << "message '" << err() << "' lacks '" << part << "'";
  };
  expect_invalid(smp_group_create(dup, 0, &g), "nranks 0 must be >= 1");
  expect_invalid(smp_group_create(dup, -3, &g), "nranks -3 must be >= 1");
  expect_invalid(smp_group_create(nullptr, 2, &g), "world_ranks is NULL");
  expect_invalid(smp_group_create(dup, 2, nullptr), "group is NULL");
  expect_invalid(smp_group_create(dup, 2, &g), "listed twice");
  expect_invalid(smp_group_create(out_of_range, 2, &g), "is out of range");
  expect_invalid(smp_group_create(negative, 1, &g), "world_ranks[0] = -1 is out of range");
  if (n > 1) {
    const int other[1] = {(w + 1) % n};
    expect_invalid(smp_group_create(other, 1, &g), "is not in world_ranks");
  }
  expect_invalid(smp_group_destroy(SMP_WORLD), "WORLD is one of the layout's groups");
  expect_invalid(smp_group_destroy(SMP_TP_GROUP), "cannot be destroyed");
  expect_invalid(smp_group_destroy(static_cast<smp_group_t>(999)), "never created here");
  expect_invalid(smp_group_destroy(static_cast<smp_group_t>(17)), "is not an smp_group_t");
  float x = 0;
  expect_invalid(smp_allreduce(&x, &x, 1, SMP_FLOAT32, SMP_SUM, static_cast<smp_group_t>(1000), nullptr),
                 "group 1000 is not a group of this rank");
  expect_invalid(smp_reduce(&x, &x, 1, SMP_FLOAT32, SMP_SUM, n, SMP_WORLD, nullptr), "reduce: root");
  expect_invalid(smp_reduce(&x, &x, 1, SMP_FLOAT32, SMP_SUM, -1, SMP_WORLD, nullptr), "out of range");
  expect_invalid(smp_reduce(&x, nullptr, 1, SMP_FLOAT32, SMP_SUM, w, SMP_WORLD, nullptr), "recvbuf");
  expect_invalid(smp_reduce(&x, &x, 1, static_cast<smp_dtype_t>(42), SMP_SUM, 0, SMP_WORLD, nullptr), "dtype 42");
  size_t counts[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  expect_invalid(smp_scatterv(&x, counts, &x, 1, SMP_FLOAT32, n + 2, SMP_WORLD, nullptr), "scatterv: root");
  expect_invalid(smp_scatterv(&x, nullptr, &x, 1, SMP_FLOAT32, w, SMP_WORLD, nullptr), "sendcounts");
  std::vector<float> big(static_cast<size_t>(n) + 4);
  expect_invalid(smp_scatterv(big.data(), counts, big.data() + 2, 2, SMP_FLOAT32, w, SMP_WORLD, nullptr),
                 "recvcount is 2");
  std::vector<size_t> zero(static_cast<size_t>(n), 0), one(static_cast<size_t>(n), 1), dis(static_cast<size_t>(n), 0);
  std::vector<size_t> mine_only = zero;
  mine_only[static_cast<size_t>(w)] = 1;
  expect_invalid(smp_alltoallv(&x, mine_only.data(), dis.data(), big.data(), zero.data(), dis.data(), SMP_FLOAT32,
                               SMP_WORLD, nullptr),
                 "this rank's block to itself");
  expect_invalid(smp_alltoallv(&x, nullptr, dis.data(), big.data(), zero.data(), dis.data(), SMP_FLOAT32, SMP_WORLD,
                               nullptr),
                 "sendcounts");
  expect_invalid(smp_alltoallv(big.data(), one.data(), dis.data(), big.data(), one.data(), dis.data(), SMP_FLOAT32,
                               SMP_WORLD, nullptr),
                 "overlap");
  expect_invalid(smp_recv_any(&x, 1, SMP_FLOAT32, SMP_WORLD, 0, nullptr, nullptr), "source is NULL");
  int source = 0;
  expect_invalid(smp_recv_any(&x, 1, SMP_FLOAT32, SMP_WORLD, -2, &source, nullptr), "tag -2");
  expect_invalid(smp_recv_any(nullptr, 4, SMP_FLOAT32, SMP_WORLD, 0, &source, nullptr), "buf");
  expect_invalid(smp_group_set_timeout(SMP_WORLD, -1), "must be a finite number >= 0");
  expect_invalid(smp_group_set_timeout(SMP_WORLD, NAN), "must be a finite number >= 0");
  expect_invalid(smp_group_set_timeout(static_cast<smp_group_t>(999), 1), "never created here");
  // The world is still in step.
  ASSERT_EQ(smp_barrier(SMP_WORLD), SMP_SUCCESS) << err();
}

bool checking() {
  const char *c = std::getenv("SMP_CHECK");
  return c && std::string(c) == "1";
}

// SMP_CHECK: the last rank passes a different argument; every rank fails
// with PEER_FAILED and a message naming the mismatch, and the group stays
// usable afterwards.
TEST(Check, MismatchedNewCollectivesAreNamedOnEveryRank) {
  if (!checking()) GTEST_SKIP() << "SMP_CHECK=1 runs only";
  const int n = world_size(), w = world_rank();
  const bool odd = w == n - 1;
  std::vector<int> rev(n);
  for (int i = 0; i < n; ++i) rev[i] = n - 1 - i;
  const smp_group_t created = make(rev);
  for (smp_group_t g : {SMP_WORLD, created}) {
    const std::string name = g == SMP_WORLD ? "WORLD" : "group " + std::to_string(static_cast<int>(g)) + " (world ranks ";
    int me = 0;
    smp_rank(g, &me);
    std::vector<float> buf(64, 1.0f), out(64, 0.0f);
    EXPECT_EQ(smp_reduce(buf.data(), out.data(), odd ? 9 : 8, SMP_FLOAT32, SMP_SUM, 0, g, nullptr),
              SMP_ERR_PEER_FAILED);
    EXPECT_TRUE(contains(err(), "SMP_CHECK: collective mismatch on " + name)) << err();
    EXPECT_TRUE(contains(err(), "reduce(dtype=F32, op=SUM, count=9, root=0)")) << err();
    EXPECT_EQ(smp_reduce(buf.data(), out.data(), 8, SMP_FLOAT32, SMP_SUM, odd ? 1 : 0, g, nullptr),
              SMP_ERR_PEER_FAILED);
    EXPECT_TRUE(contains(err(), "root=1")) << err();
    EXPECT_EQ(smp_reduce(buf.data(), out.data(), 8, odd ? SMP_INT32 : SMP_FLOAT32, SMP_SUM, 0, g, nullptr),
              SMP_ERR_PEER_FAILED);
    EXPECT_TRUE(contains(err(), "dtype=I32")) << err();
    // The last world rank's rank in g, and a peer of it.
    const int odd_me = g == SMP_WORLD ? n - 1 : 0, from = odd_me == 0 ? 1 : 0;
    // scatterv: the last rank expects one element more than root sends it.
    std::vector<size_t> counts(n, 2);
    EXPECT_EQ(smp_scatterv(buf.data(), counts.data(), out.data(), odd ? 3 : 2, SMP_FLOAT32, from, g, nullptr),
              SMP_ERR_PEER_FAILED);
    EXPECT_TRUE(contains(err(), "SMP_CHECK: scatterv on " + name)) << err();
    EXPECT_TRUE(contains(err(), "rank " + std::to_string(odd_me) + " expects 3 elements (its recvcount) but root's sendcounts[" +
                                    std::to_string(odd_me) + "] is 2")) << err();
    // alltoallv: the last rank expects 2 elements from `from`, which sends 1.
    std::vector<size_t> sc(n, 1), sd(n), rc(n, 1), rd(n);
    for (int p = 0; p < n; ++p) sd[p] = rd[p] = 2 * p;
    if (odd) rc[from] = 2;
    EXPECT_EQ(smp_alltoallv(buf.data(), sc.data(), sd.data(), out.data(), rc.data(), rd.data(), SMP_FLOAT32, g,
                            nullptr),
              SMP_ERR_PEER_FAILED);
    EXPECT_TRUE(contains(err(), "SMP_CHECK: alltoallv on " + name)) << err();
    EXPECT_TRUE(contains(err(), "rank " + std::to_string(from) + " sends 1 elements to rank " +
                                    std::to_string(odd_me) + " but rank " + std::to_string(odd_me) +
                                    "'s recvcounts[" + std::to_string(from) + "] is 2"))
        << err();
    // Matched calls still work afterwards.
    float one = 1, total = 0;
    ASSERT_EQ(smp_reduce(&one, &total, 1, SMP_FLOAT32, SMP_SUM, 0, g, nullptr), SMP_SUCCESS) << err();
    if (me == 0) {
      EXPECT_EQ(total, n);
    }
  }
  // The last rank names WORLD where the others name the created group (of
  // the same ranks): every rank fails, the message names both groups.
  const smp_status_t st = smp_barrier(odd ? SMP_WORLD : created);
  EXPECT_EQ(st, SMP_ERR_PEER_FAILED) << err();
  EXPECT_TRUE(contains(err(), "SMP_CHECK: group mismatch")) << err();
  EXPECT_TRUE(contains(err(), "group " + std::to_string(static_cast<int>(created)) + " (world ranks ")) << err();
  EXPECT_TRUE(contains(err(), "WORLD [")) << err();
  ASSERT_EQ(smp_barrier(SMP_WORLD), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_barrier(created), SMP_SUCCESS) << err();
  ASSERT_EQ(smp_group_destroy(created), SMP_SUCCESS) << err();
}

}  // namespace
}  // namespace smp::test

int main(int argc, char **argv) { return smp::test::run_all_ranks(argc, argv); }
