// The checkpoint save's metadata over the control plane: one document per
// rank gathered once (pieces and user content), the file records once, the
// agreements the failure semantics need, and nothing else. The count of
// control-plane calls of one save is pinned so that it cannot silently
// grow: it was 24 when the metadata crossed in three formats (JSON, TSV,
// length-prefixed), each string gathered through four collectives.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <thread>

#include "../comm/thread_bootstrap.h"
#include "ckpt/checkpoint.h"
#include "ckpt/fileio.h"
#include "common/error.h"
#include "test_util.h"

using namespace smp;
using namespace smp::ckpt;
using ckpt_test::pattern;
using ckpt_test::TmpDir;

namespace {

// Counts every call per kind, passing it on to the real control plane.
class CountingBootstrap final : public comm::Bootstrap {
 public:
  explicit CountingBootstrap(comm::Bootstrap &inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  void broadcast(void *bytes, size_t n, int root) override {
    ++broadcasts;
    inner_.broadcast(bytes, n, root);
  }
  std::vector<std::string> allgatherv(const std::string &mine) override {
    ++allgathervs;
    return inner_.allgatherv(mine);
  }
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override {
    ++gathervs;
    inner_.gatherv(send, n, recv, counts, root);
  }
  int all_min(int v) override {
    ++others;
    return inner_.all_min(v);
  }
  void barrier() override {
    ++others;
    inner_.barrier();
  }
  std::string describe() const override { return inner_.describe(); }
  // Everything but gatherv, which carries tensor data (consolidated saves).
  int metadata() const { return broadcasts + allgathervs + others; }

  int broadcasts = 0, allgathervs = 0, gathervs = 0, others = 0;

 private:
  comm::Bootstrap &inner_;
};

constexpr uint64_t kRows = 6, kCols = 4;

// Rank r of 2 holds rows [3r, 3r + 3) of a 6 x 4 tensor and sets user
// content of its own.
struct RankState {
  std::vector<uint32_t> rows = std::vector<uint32_t>(kRows / 2 * kCols);
  std::vector<uint32_t> bias = std::vector<uint32_t>(kCols);
  void add_to(Checkpoint &c, int rank) {
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = pattern(1, static_cast<uint64_t>(rank) * rows.size() + i);
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = pattern(2, i);
    c.add("w", Kind::Model, DType::F32, Piece::box({kRows, kCols}, {kRows / 2 * static_cast<uint64_t>(rank), 0},
                                                   {kRows / 2, kCols}, "w"),
          rows.data(), false);
    c.add("b", Kind::Model, DType::F32, Piece::whole({kCols}, "b"), bias.data(), true);
    c.set_user("rng", std::string("\0\xff rank ", 8) + std::to_string(rank));
  }
};

}  // namespace

// One process: every control-plane call of a save is metadata.
TEST(SaveMetadata, OneSaveMakesSixControlPlaneCalls) {
  for (bool sharded : {false, true}) {
    TmpDir root;
    comm::SelfBootstrap self;
    CountingBootstrap b(self);
    std::vector<uint32_t> w(12), o(12);
    Checkpoint c;
    c.add("w", Kind::Model, DType::F32, Piece::whole({3, 4}, "w"), w.data(), false);
    c.add("w", Kind::Optimizer, DType::F32, Piece::whole({3, 4}, "o"), o.data(), false);
    c.set_user("step", "7");
    SaveOptions opt;
    opt.sharded = sharded;
    c.save(b, root.path(), opt);
    // allgatherv: the ranks' documents, agree (folder made), the file
    // records, agree (files written), agree (committed); broadcast: the
    // sequence number.
    EXPECT_EQ(b.allgathervs, 5) << sharded;
    EXPECT_EQ(b.broadcasts, 1) << sharded;
    EXPECT_EQ(b.others, 0) << sharded;
    EXPECT_EQ(b.gathervs, 0) << sharded;
    EXPECT_EQ(b.metadata(), 6) << sharded;
  }
}

// Two ranks (threads): the same six calls on each, whichever mode; every
// rank's pieces and user content reach the checkpoint through them.
TEST(SaveMetadata, TwoRanksSaveThroughOneDocumentEach) {
  for (bool sharded : {false, true}) {
    TmpDir root;
    comm::testing::ThreadGroup group(2);
    std::array<RankState, 2> state;
    std::array<int, 2> metadata{}, gathervs{};
    std::array<std::string, 2> dirs, errors;
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r)
      ranks.emplace_back([&, r] {
        try {
          comm::testing::ThreadBootstrap tb(group, r);
          CountingBootstrap b(tb);
          Checkpoint c;
          state[static_cast<size_t>(r)].add_to(c, r);
          SaveOptions opt;
          opt.sharded = sharded;
          dirs[static_cast<size_t>(r)] = c.save(b, root.path(), opt);
          metadata[static_cast<size_t>(r)] = b.metadata();
          gathervs[static_cast<size_t>(r)] = b.gathervs;
        } catch (const std::exception &e) {
          errors[static_cast<size_t>(r)] = e.what();
        }
      });
    for (auto &t : ranks) t.join();
    ASSERT_EQ(errors[0] + errors[1], "") << sharded;
    EXPECT_EQ(dirs[0], dirs[1]);
    EXPECT_EQ(metadata[0], 6) << sharded;
    EXPECT_EQ(metadata[1], 6) << sharded;
    if (sharded) {
      EXPECT_EQ(gathervs[0], 0);  // each rank writes its own pieces
    }

    // One process loads it whole: both ranks' rows, the bias once, and
    // each rank's user content under its rank.
    comm::SelfBootstrap self;
    std::vector<uint32_t> w(kRows * kCols), bias(kCols);
    Checkpoint l;
    l.add("w", Kind::Model, DType::F32, Piece::whole({kRows, kCols}, "w"), w.data(), false);
    l.add("b", Kind::Model, DType::F32, Piece::whole({kCols}, "b"), bias.data(), false);
    EXPECT_EQ(l.load(self, root.path(), {}), dirs[0]);
    for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(w[i], pattern(1, i)) << sharded << " element " << i;
    EXPECT_EQ(bias, state[0].bias);
    for (int r = 0; r < 2; ++r) {
      std::string v;
      ASSERT_TRUE(l.user("rng", r, &v)) << r;
      EXPECT_EQ(v, std::string("\0\xff rank ", 8) + std::to_string(r));
    }
    EXPECT_EQ(l.loaded_world_size(), 2);
  }
}
