// The global table: replica deduplication, and every way ranks' pieces
// can fail to tile a tensor, rejected before any file is written.
#include "ckpt/plan.h"

#include "ckpt/json.h"

#include <gtest/gtest.h>

#include "common/error.h"

using namespace smp;
using namespace smp::ckpt;

namespace {

PieceDesc box(const std::string &n, std::vector<uint64_t> shape, std::vector<uint64_t> off, std::vector<uint64_t> ext,
              bool rep = false, DType t = DType::F32) {
  return PieceDesc{n, Kind::Model, t, Piece::box(shape, off, ext, n), rep};
}

std::string error_of(const std::vector<std::vector<PieceDesc>> &ranks) {
  try {
    build_table(ranks);
    return "";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    return e.what();
  }
}

}  // namespace

TEST(Plan, TensorParallelSlicesWithReplicas) {
  // tp=2 column slices, rdp=2 replicas of each: ranks 0,1 | 2,3.
  std::vector<std::vector<PieceDesc>> r(4);
  for (int rank = 0; rank < 4; ++rank) {
    const uint64_t tp = static_cast<uint64_t>(rank % 2);
    r[static_cast<size_t>(rank)].push_back(box("w", {4, 6}, {0, 3 * tp}, {4, 3}, true));
    r[static_cast<size_t>(rank)].push_back(box("b", {6}, {0}, {6}, true));
  }
  r[1].push_back(PieceDesc{"w", Kind::Optimizer, DType::F32, Piece::flat({4, 6}, 0, 10, "w"), false});
  r[3].push_back(PieceDesc{"w", Kind::Optimizer, DType::F32, Piece::flat({4, 6}, 10, 14, "w"), false});
  const auto t = build_table(r);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "b");
  ASSERT_EQ(t[0].owners.size(), 1u);
  EXPECT_EQ(t[0].owners[0].rank, 0);
  EXPECT_EQ(t[1].name, "w");
  ASSERT_EQ(t[1].owners.size(), 2u);
  EXPECT_EQ(t[1].owners[1].rank, 1);
  EXPECT_EQ(t[2].kind, Kind::Optimizer);
  EXPECT_EQ(t[2].owners[1].rank, 3);
}

TEST(Plan, RejectsBadTilings) {
  EXPECT_NE(error_of({{box("w", {4}, {0}, {4})}, {box("w", {4}, {0}, {4})}}).find("replicated"), std::string::npos);
  EXPECT_NE(error_of({{box("w", {4}, {0}, {3})}, {box("w", {4}, {2}, {2})}}).find("overlap"), std::string::npos);
  EXPECT_NE(error_of({{box("w", {4}, {0}, {2})}, {}}).find("cover 2 of its 4"), std::string::npos);
  EXPECT_NE(error_of({{box("w", {4}, {0}, {2})}, {box("w", {5}, {2}, {2})}}).find("registers"), std::string::npos);
  EXPECT_NE(error_of({{box("w", {4}, {0}, {2})}, {box("w", {4}, {2}, {2}, false, DType::BF16)}}).find("BF16"),
            std::string::npos);
  EXPECT_EQ(error_of({{box("w", {4}, {0}, {2})}, {box("w", {4}, {2}, {2})}}), "");
}

TEST(Plan, DescriptorsRoundTrip) {
  std::vector<PieceDesc> d = {box("a\"b", {4, 6}, {1, 2}, {3, 4}, true, DType::I64),
                              PieceDesc{"o", Kind::Optimizer, DType::BF16, Piece::flat({9}, 3, 4, "o"), false}};
  const auto back = descs_from_json(descs_to_json(d));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].name, "a\"b");
  EXPECT_TRUE(back[0].replicated);
  EXPECT_EQ(back[0].dtype, DType::I64);
  EXPECT_TRUE(back[0].piece.same_elements(d[0].piece));
  EXPECT_EQ(back[1].kind, Kind::Optimizer);
  EXPECT_TRUE(back[1].piece.is_range());
  EXPECT_EQ(back[1].piece.range_begin(), 3u);
  EXPECT_THROW(descs_from_json(smp::ckpt::json::Json::parse("[{\"name\":1}]")), Error);
}

TEST(Plan, FilesSplitAndDealtToWriters) {
  std::vector<std::vector<PieceDesc>> r(1);
  for (const char *n : {"a", "b", "c", "d"}) r[0].push_back(box(n, {256}, {0}, {256}));  // 1 KiB each
  r[0].push_back(PieceDesc{"a", Kind::Optimizer, DType::F32, Piece::flat({256}, 0, 256, "a"), false});
  const auto t = build_table(r);
  auto f = plan_files(t, 2048, 3);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].name, "model-00001-of-00002.safetensors");
  EXPECT_EQ(f[0].tensors.size(), 2u);
  EXPECT_EQ(f[1].name, "model-00002-of-00002.safetensors");
  EXPECT_EQ(f[2].name, "optimizer.safetensors");
  EXPECT_EQ(f[2].writer, 2);
  f = plan_files(t, 0, 3);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].name, "model.safetensors");
  EXPECT_EQ(f[0].bytes, 4096u);
}
