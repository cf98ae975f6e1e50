// Piece index math against brute force: every element of random boxes and
// flat ranges enumerated one by one, with coordinates computed directly.
#include "ckpt/piece.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "common/error.h"

using smp::ckpt::overlap_count;
using smp::ckpt::overlaps;
using smp::ckpt::Piece;

namespace {

// global index -> local index, element by element.
std::map<uint64_t, uint64_t> brute(const Piece &p) {
  std::map<uint64_t, uint64_t> m;
  const auto &s = p.shape();
  uint64_t total = 1;
  for (uint64_t d : s) total *= d;
  // Every element of the box in row-major order; the piece keeps those
  // whose box index lies in its range.
  uint64_t local = 0, box_index = 0;
  const uint64_t rb = p.range_begin(), re = p.range_begin() + p.numel();
  // Walk the box's coordinates in row-major order.
  std::vector<uint64_t> idx(s.size(), 0);
  if (p.box_numel() == 0) return m;
  for (;;) {
    uint64_t g = 0;
    for (size_t d = 0; d < s.size(); ++d) g = g * s[d] + p.offset()[d] + idx[d];
    if (box_index >= rb && box_index < re) m[g] = local++;
    ++box_index;
    size_t d = s.size();
    while (d > 0) {
      --d;
      if (++idx[d] < p.extent()[d]) break;
      idx[d] = 0;
      if (d == 0) return m;
    }
    if (s.empty()) return m;
  }
}

Piece random_piece(std::mt19937 &rng, const std::vector<uint64_t> &shape) {
  uint64_t total = 1;
  for (uint64_t d : shape) total *= d;
  if (rng() % 4 == 0) {
    const uint64_t b = rng() % (total + 1);
    return Piece::flat(shape, b, rng() % (total - b + 1), "t");
  }
  std::vector<uint64_t> off, ext;
  for (uint64_t d : shape) {
    const uint64_t o = rng() % (d + 1);
    off.push_back(o);
    // Often full or empty-offset, so the merged-run paths get exercised.
    ext.push_back(rng() % 3 == 0 ? d - o : rng() % (d - o + 1));
    if (rng() % 4 == 0) {
      off.back() = 0;
      ext.back() = d;
    }
  }
  if (rng() % 3 == 0) {  // a range of the box: optimizer state of a TP slice
    uint64_t n = 1;
    for (uint64_t e : ext) n *= e;
    const uint64_t b = rng() % (n + 1);
    return Piece::box_range(shape, off, ext, b, rng() % (n - b + 1), "t");
  }
  return Piece::box(shape, off, ext, "t");
}

std::vector<uint64_t> random_shape(std::mt19937 &rng) {
  std::vector<uint64_t> s(rng() % 4);
  for (auto &d : s) d = 1 + rng() % 5;
  return s;
}

}  // namespace

TEST(Piece, RunsMatchBruteForce) {
  std::mt19937 rng(3);
  for (int it = 0; it < 3000; ++it) {
    const auto shape = random_shape(rng);
    const Piece p = random_piece(rng, shape);
    const auto ref = brute(p);
    ASSERT_EQ(ref.size(), p.numel()) << p.describe();
    const uint64_t total = p.global_numel();
    const uint64_t from = rng() % (total + 1), to = from + rng() % (total - from + 1);
    std::map<uint64_t, uint64_t> got;
    uint64_t last = 0;
    bool first = true;
    for (const auto &r : p.runs_in(from, to)) {
      ASSERT_GT(r.len, 0u);
      if (!first) {
        ASSERT_GE(r.global, last) << "runs out of order";
      }
      first = false;
      last = r.global + r.len;
      for (uint64_t k = 0; k < r.len; ++k) got[r.global + k] = r.local + k;
    }
    std::map<uint64_t, uint64_t> want;
    for (const auto &[g, l] : ref) {
      if (g >= from && g < to) want[g] = l;
    }
    ASSERT_EQ(got, want) << p.describe() << " in [" << from << ", " << to << ")";
  }
}

TEST(Piece, OverlapsMatchBruteForce) {
  std::mt19937 rng(4);
  for (int it = 0; it < 3000; ++it) {
    const auto shape = random_shape(rng);
    const Piece a = random_piece(rng, shape), b = random_piece(rng, shape);
    const auto ra = brute(a), rb = brute(b);
    std::map<uint64_t, std::pair<uint64_t, uint64_t>> want, got;
    for (const auto &[g, l] : ra) {
      if (rb.count(g)) want[g] = {l, rb.at(g)};
    }
    for (const auto &o : overlaps(a, b))
      for (uint64_t k = 0; k < o.len; ++k) got[o.global + k] = {o.a_local + k, o.b_local + k};
    ASSERT_EQ(got, want) << a.describe() << " x " << b.describe();
    ASSERT_EQ(overlap_count(a, b), want.size());
  }
}

TEST(Piece, RunsMerge) {
  // Row slices of a matrix are one run; column slices one run per row.
  const Piece rows = Piece::box({8, 6}, {2, 0}, {3, 6}, "t");
  EXPECT_EQ(rows.num_runs(), 1u);
  EXPECT_EQ(rows.lo(), 12u);
  EXPECT_EQ(rows.hi(), 30u);
  const Piece cols = Piece::box({8, 6}, {0, 3}, {8, 3}, "t");
  EXPECT_EQ(cols.num_runs(), 8u);
  EXPECT_EQ(Piece::box({4, 8, 6}, {1, 0, 0}, {2, 8, 6}, "t").num_runs(), 1u);
  EXPECT_TRUE(Piece::flat({8, 6}, 12, 18, "t").same_elements(rows));
  EXPECT_EQ(rows.describe(), "[2:5, 0:6] of [8, 6]");
  // A range of a column slice: rows 1..2 of the slice, partly.
  const Piece part = Piece::box_range({8, 6}, {0, 3}, {8, 3}, 4, 4, "t");
  EXPECT_EQ(part.num_runs(), 2u);
  EXPECT_EQ(part.lo(), 10u);  // row 1, column 4
  EXPECT_EQ(part.hi(), 17u);  // row 2, column 4, plus one
  EXPECT_EQ(part.local_shape(), (std::vector<uint64_t>{4}));
  EXPECT_EQ(part.describe(), "elements [4, 8) of [0:8, 3:6] of [8, 6]");
}

TEST(Piece, RejectsOutOfRange) {
  EXPECT_THROW(Piece::box({4, 4}, {3, 0}, {2, 4}, "t"), smp::Error);
  EXPECT_THROW(Piece::box({4, 4}, {0}, {4}, "t"), smp::Error);
  EXPECT_THROW(Piece::flat({4, 4}, 10, 7, "t"), smp::Error);
  EXPECT_THROW(Piece::box({uint64_t{1} << 40, uint64_t{1} << 40}, {0, 0}, {1, 1}, "t"), smp::Error);
  EXPECT_NO_THROW(Piece::flat({4, 4}, 16, 0, "t"));
}
