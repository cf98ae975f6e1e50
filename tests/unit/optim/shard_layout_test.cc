// ShardLayout on random tensor lists: coverage (every element owned by
// exactly one rank), determinism, alignment, padding bounds, bucket caps,
// and the errors it reports.
#include "optim/shard_layout.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>
#include <set>

#include "common/error.h"

namespace smp::optim {
namespace {

std::vector<TensorSpec> random_tensors(std::mt19937_64 &rng, size_t n) {
  const DType dtypes[] = {DType::F32, DType::BF16, DType::F16};
  std::vector<TensorSpec> t;
  for (size_t i = 0; i < n; ++i) {
    TensorSpec s;
    s.name = "layer" + std::to_string(i) + ".w";
    switch (rng() % 5) {
      case 0: s.count = 0; break;                         // empty tensors are allowed
      case 1: s.count = 1 + rng() % 7; break;             // tiny, odd
      case 2: s.count = 1 + rng() % 997; break;
      default: s.count = 1 + rng() % 50000; break;
    }
    s.dtype = dtypes[rng() % 3];
    t.push_back(s);
  }
  return t;
}

struct Params {
  int n;
  size_t cap;
  size_t align;
};

class LayoutRandom : public ::testing::TestWithParam<Params> {};

TEST_P(LayoutRandom, CoverageAlignmentPaddingAndDeterminism) {
  const Params prm = GetParam();
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    std::mt19937_64 rng(seed * 7919 + static_cast<uint64_t>(prm.n));
    const auto tensors = random_tensors(rng, 1 + rng() % 40);
    const ShardLayout L(tensors, prm.n, prm.cap, prm.align);
    const ShardLayout L2(tensors, prm.n, prm.cap, prm.align);
    ASSERT_EQ(L.fingerprint(), L2.fingerprint());
    ASSERT_EQ(L.buckets().size(), L2.buckets().size());

    // Coverage: each element of each tensor is owned by exactly one rank,
    // and shard offsets of a rank are distinct and inside its shard.
    std::vector<std::vector<int>> owner(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) owner[i].assign(tensors[i].count, -1);
    size_t total = 0;
    for (const auto &t : tensors) total += t.count;
    ASSERT_EQ(L.total_elems(), total);
    for (int r = 0; r < prm.n; ++r) {
      const auto pieces = L.pieces(r);
      ASSERT_EQ(pieces, L2.pieces(r));  // determinism, piece by piece
      std::vector<char> used(L.shard_elems(), 0);
      size_t prev_end = 0;
      for (const Piece &p : pieces) {
        ASSERT_EQ(p.rank, r);
        ASSERT_GT(p.length, 0u);
        ASSERT_GE(p.shard_offset, prev_end);  // shard order
        prev_end = p.shard_offset + p.length;
        ASSERT_LE(prev_end, L.shard_elems());
        const size_t b = p.bucket;
        ASSERT_GE(p.flat_offset, L.owned_begin(r, b));
        ASSERT_LE(p.flat_offset + p.length, L.owned_end(r, b));
        ASSERT_EQ(p.flat_offset, L.tensor_flat_offset(p.tensor) + p.tensor_offset);
        for (size_t k = 0; k < p.length; ++k) {
          ASSERT_EQ(owner[p.tensor][p.tensor_offset + k], -1) << "element owned twice";
          owner[p.tensor][p.tensor_offset + k] = r;
          ASSERT_EQ(used[p.shard_offset + k], 0);
          used[p.shard_offset + k] = 1;
        }
      }
    }
    for (size_t i = 0; i < tensors.size(); ++i)
      for (int o : owner[i]) ASSERT_GE(o, 0) << "element of " << tensors[i].name << " unowned";

    // tensor_pieces agrees with pieces(r), in tensor order.
    for (size_t i = 0; i < tensors.size(); ++i) {
      size_t next = 0;
      for (const Piece &p : L.tensor_pieces(i)) {
        ASSERT_EQ(p.tensor, i);
        ASSERT_EQ(p.tensor_offset, next);
        next += p.length;
        ASSERT_EQ(owner[i][p.tensor_offset], p.rank);
      }
      ASSERT_EQ(next, tensors[i].count);
    }

    // Buckets: one dtype, slices aligned in the bucket dtype and in float32
    // state, padding below one alignment unit per rank, cap respected.
    size_t flat = 0, bytes = 0;
    for (const Bucket &b : L.buckets()) {
      const size_t ds = dtype_size(b.dtype);
      ASSERT_EQ(b.flat_offset, flat);
      ASSERT_EQ(b.byte_offset, bytes);
      ASSERT_EQ(b.elems % static_cast<size_t>(prm.n), 0u);
      ASSERT_EQ((b.byte_offset + b.slice(prm.n) * ds) % prm.align, 0u);
      ASSERT_EQ((b.shard_offset * 4) % prm.align, 0u);
      ASSERT_EQ(b.shard_offset * static_cast<size_t>(prm.n), b.flat_offset);
      ASSERT_GE(b.elems, b.used);
      ASSERT_LT(b.elems - b.used, static_cast<size_t>(prm.n) * align_elems(b.dtype, prm.align));
      size_t used = 0;
      for (size_t i : b.tensors) {
        ASSERT_EQ(tensors[i].dtype, b.dtype);
        used += tensors[i].count;
      }
      ASSERT_EQ(used, b.used);
      if (b.tensors.size() > 1) {
        ASSERT_LE(b.used * ds, prm.cap);
      }
      flat += b.elems;
      bytes += b.elems * ds;
    }
    ASSERT_EQ(L.flat_elems(), flat);
    ASSERT_EQ(L.flat_bytes(), bytes);
    ASSERT_EQ(L.shard_elems() * static_cast<size_t>(prm.n), L.flat_elems());
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, LayoutRandom,
                         ::testing::Values(Params{1, 1u << 20, 64}, Params{2, 4096, 64},
                                           Params{3, 10000, 64}, Params{4, 1u << 16, 32},
                                           Params{7, 3000, 128}, Params{8, 1u << 18, 64},
                                           Params{16, 100, 16}));

TEST(ShardLayout, OrderFollowsRegistrationAndFingerprintSeesChanges) {
  std::vector<TensorSpec> t = {{"a", 10, DType::F32}, {"b", 20, DType::BF16},
                               {"c", 30, DType::F32}, {"d", 40, DType::BF16}};
  const ShardLayout L(t, 2, 1 << 20);
  ASSERT_EQ(L.buckets().size(), 2u);
  EXPECT_EQ(L.buckets()[0].tensors, (std::vector<size_t>{0, 2}));  // first tensor 'a'
  EXPECT_EQ(L.buckets()[1].tensors, (std::vector<size_t>{1, 3}));
  EXPECT_LT(L.tensor_flat_offset(0), L.tensor_flat_offset(2));
  auto t2 = t;
  t2[3].count = 41;
  EXPECT_NE(L.fingerprint(), ShardLayout(t2, 2, 1 << 20).fingerprint());
  auto t3 = t;
  std::swap(t3[0], t3[2]);
  EXPECT_NE(L.fingerprint(), ShardLayout(t3, 2, 1 << 20).fingerprint());
  EXPECT_NE(L.fingerprint(), ShardLayout(t, 3, 1 << 20).fingerprint());
}

TEST(ShardLayout, TensorLargerThanCapGetsItsOwnBucket) {
  std::vector<TensorSpec> t = {{"small", 10, DType::F32}, {"huge", 1000, DType::F32},
                               {"small2", 10, DType::F32}};
  const ShardLayout L(t, 4, 400);  // 100 floats
  ASSERT_EQ(L.buckets().size(), 3u);
  EXPECT_EQ(L.buckets()[1].tensors, (std::vector<size_t>{1}));
}

TEST(ShardLayout, GroupLargerThanTheModelAndEmptyLists) {
  const ShardLayout L({{"x", 3, DType::F32}}, 8, 1 << 20);
  EXPECT_EQ(L.flat_elems(), 8u * 16u);  // 16 floats = 64 bytes per rank
  EXPECT_EQ(L.pieces(0).size(), 1u);
  for (int r = 1; r < 8; ++r) EXPECT_TRUE(L.pieces(r).empty());
  const ShardLayout E({}, 3, 1 << 20);
  EXPECT_EQ(E.flat_elems(), 0u);
  EXPECT_TRUE(E.buckets().empty());
  const ShardLayout Z({{"z", 0, DType::F32}}, 2, 1 << 20);
  EXPECT_EQ(Z.tensor_bucket(0), ShardLayout::kNoBucket);
  EXPECT_TRUE(Z.tensor_pieces(0).empty());
}

void expect_invalid(const std::function<void()> &f, const std::string &needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ShardLayout, RejectsBadInput) {
  expect_invalid([] { ShardLayout({{"a", 1, DType::F32}}, 0, 64); }, "group size 0");
  expect_invalid([] { ShardLayout({{"a", 1, DType::F32}}, 2, 0); }, "bucket cap");
  expect_invalid([] { ShardLayout({{"a", 1, DType::F32}}, 2, 64, 48); }, "power of two");
  expect_invalid([] { ShardLayout({{"a", 1, DType::F32}, {"a", 2, DType::F32}}, 2, 64); },
                 "'a'): the name is registered twice");
  expect_invalid([] { ShardLayout({{"ids", 4, DType::I64}}, 2, 64); }, "dtype I64");
  expect_invalid([] { ShardLayout({{"", 4, DType::F32}}, 2, 64); }, "has no name");
}

}  // namespace
}  // namespace smp::optim
