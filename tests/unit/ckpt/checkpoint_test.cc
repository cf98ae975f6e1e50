// Save/load in one process (comm::SelfBootstrap): both modes, loading into other
// slicings, user content, keep-K, the folder protocol, and corruption
// caught by the checksums. Multi-rank resharding is tests/mpi/ckpt.
#include "ckpt/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <sstream>

#include "ckpt/fileio.h"
#include "ckpt/safetensors.h"
#include "ckpt/store.h"
#include "common/error.h"
#include "test_util.h"

using namespace smp;
using namespace smp::ckpt;
using ckpt_test::pattern;
using ckpt_test::TmpDir;

namespace {

std::vector<uint32_t> filled(uint32_t seed, size_t n) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = pattern(seed, i);
  return v;
}

Status status_of(const std::function<void()> &f) {
  try {
    f();
    return Status::Success;
  } catch (const Error &e) {
    return e.status();
  }
}

struct Model {
  std::vector<uint32_t> w = filled(1, 12 * 10), b = filled(2, 10), opt = filled(3, 12 * 10);
  std::vector<uint16_t> h = std::vector<uint16_t>(33);
  void add_to(Checkpoint &c) {
    c.add("layer.w", Kind::Model, DType::F32, Piece::whole({12, 10}, "w"), w.data(), false);
    c.add("layer.b", Kind::Model, DType::I32, Piece::whole({10}, "b"), b.data(), false);
    c.add("layer.h", Kind::Model, DType::BF16, Piece::whole({3, 11}, "h"), h.data(), false);
    c.add("layer.w", Kind::Optimizer, DType::F32, Piece::whole({12, 10}, "o"), opt.data(), false);
  }
  Model() {
    for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(pattern(4, i));
  }
};

}  // namespace

class Modes : public ::testing::TestWithParam<bool> {};

TEST_P(Modes, SaveLoadAndReshard) {
  TmpDir root;
  comm::SelfBootstrap ex;
  Model m;
  Checkpoint save;
  m.add_to(save);
  save.set_user("step", "1234");
  save.set_user("rng", std::string("\0\1\2", 3));
  SaveOptions opt;
  opt.sharded = GetParam();
  opt.buffer_bytes = 4096;  // several chunks per tensor
  const std::string dir = save.save(ex, root.path(), opt);
  EXPECT_EQ(dir, root / store::name_of(1));
  EXPECT_EQ(ckpt_test::slurp(root / "latest"), store::name_of(1) + "\n");

  // Load into a column slice, a row slice, a flat range and whole buffers.
  std::vector<uint32_t> cols(12 * 4), rows(5 * 10), flat(37), b(10), opt_state(120);
  std::vector<uint16_t> h(33);
  Checkpoint load;
  load.add("layer.w", Kind::Model, DType::F32, Piece::box({12, 10}, {0, 3}, {12, 4}, "w"), cols.data(), false);
  load.add("layer.b", Kind::Model, DType::I32, Piece::whole({10}, "b"), b.data(), false);
  load.add("layer.h", Kind::Model, DType::BF16, Piece::whole({3, 11}, "h"), h.data(), false);
  load.add("layer.w", Kind::Optimizer, DType::F32, Piece::flat({12, 10}, 50, 37, "o"), flat.data(), false);
  EXPECT_EQ(load.load(ex, root.path(), {}), dir);
  for (size_t r = 0; r < 12; ++r)
    for (size_t c = 0; c < 4; ++c) ASSERT_EQ(cols[r * 4 + c], m.w[r * 10 + 3 + c]);
  EXPECT_EQ(b, m.b);
  EXPECT_EQ(h, m.h);
  for (size_t i = 0; i < 37; ++i) ASSERT_EQ(flat[i], m.opt[50 + i]);
  std::string v;
  ASSERT_TRUE(load.user("step", 0, &v));
  EXPECT_EQ(v, "1234");
  ASSERT_TRUE(load.user("rng", 0, &v));
  EXPECT_EQ(v, std::string("\0\1\2", 3));
  EXPECT_FALSE(load.user("nope", 0, &v));
  EXPECT_EQ(load.loaded_world_size(), 1);

  Checkpoint rows_only;
  rows_only.add("layer.w", Kind::Model, DType::F32, Piece::box({12, 10}, {4, 0}, {5, 10}, "w"), rows.data(), false);
  rows_only.load(ex, dir, {});
  EXPECT_EQ(0, std::memcmp(rows.data(), m.w.data() + 40, rows.size() * 4));

  // Registration that does not match the checkpoint: a clear error.
  Checkpoint wrong;
  wrong.add("layer.w", Kind::Model, DType::BF16, Piece::whole({12, 10}, "w"), rows.data(), false);
  EXPECT_EQ(status_of([&] { wrong.load(ex, dir, {}); }), Status::InvalidArgument);
  Checkpoint missing;
  missing.add("nope", Kind::Model, DType::F32, Piece::whole({1}, "n"), rows.data(), false);
  EXPECT_EQ(status_of([&] { missing.load(ex, dir, {}); }), Status::InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Ckpt, Modes, ::testing::Values(false, true),
                         [](const auto &i) { return i.param ? "sharded" : "consolidated"; });

TEST(Checkpoint, ConsolidatedFilesAreStandardSafetensors) {
  TmpDir root;
  comm::SelfBootstrap ex;
  Model m;
  Checkpoint c;
  m.add_to(c);
  SaveOptions opt;
  opt.max_file_bytes = 480;  // by name: b + h (106 bytes), then w (480) alone
  const std::string dir = c.save(ex, root.path(), opt);
  EXPECT_TRUE(io::exists(io::join(dir, "model-00001-of-00002.safetensors")));
  const std::string index = ckpt_test::slurp(io::join(dir, "model.safetensors.index.json"));
  EXPECT_NE(index.find("\"total_size\": 586"), std::string::npos) << index;
  EXPECT_NE(index.find("\"layer.w\": \"model-00002-of-00002.safetensors\""), std::string::npos) << index;
  Reader r(io::join(dir, "model-00002-of-00002.safetensors"));
  std::vector<uint32_t> w(120);
  r.read_tensor("layer.w", w.data(), 480);
  EXPECT_EQ(w, m.w);
  Reader o(io::join(dir, "optimizer.safetensors"));
  o.read_tensor("layer.w", w.data(), 480);
  EXPECT_EQ(w, m.opt);
}

TEST(Checkpoint, KeepsNewestKAndIgnoresPartialOnes) {
  TmpDir root;
  comm::SelfBootstrap ex;
  Model m;
  Checkpoint c;
  m.add_to(c);
  SaveOptions opt;
  opt.keep_last = 2;
  for (int i = 0; i < 4; ++i) {
    c.set_user("i", std::to_string(i));
    c.save(ex, root.path(), opt);
  }
  EXPECT_EQ(store::complete(root.path()), (std::vector<uint64_t>{3, 4}));
  // A killed save leaves a temporary folder; a folder with the final name
  // but no manifest is never taken for complete.
  io::make_dir(root / store::tmp_name_of(5));
  io::make_dir(root / store::name_of(6));
  Checkpoint l;
  l.load(ex, root.path(), {});
  std::string v;
  ASSERT_TRUE(l.user("i", 0, &v));
  EXPECT_EQ(v, "3");
  // The next save cleans both up first.
  c.save(ex, root.path(), opt);
  EXPECT_FALSE(io::exists(root / store::tmp_name_of(5)));
  EXPECT_FALSE(io::exists(root / store::name_of(6)));
  EXPECT_EQ(store::complete(root.path()), (std::vector<uint64_t>{4, 5}));
}

TEST(Checkpoint, ChecksumsCatchCorruption) {
  comm::SelfBootstrap ex;
  for (const char *victim : {"model.safetensors", "optimizer.safetensors", "user.safetensors"}) {
    TmpDir root;
    Model m;
    Checkpoint c;
    m.add_to(c);
    c.set_user("k", "v");
    const std::string dir = c.save(ex, root.path(), {});
    const std::string path = io::join(dir, victim);
    std::string bytes = ckpt_test::slurp(path);
    bytes[bytes.size() - 3] ^= 0x10;  // one bit of data: only the CRC notices
    ckpt_test::spit(path, bytes);
    Checkpoint l;
    m.add_to(l);
    try {
      l.load(ex, root.path(), {});
      ADD_FAILURE() << victim << ": corruption not detected";
    } catch (const Error &e) {
      EXPECT_EQ(e.status(), Status::Corrupt) << e.what();
      EXPECT_NE(std::string(e.what()).find("CRC32C"), std::string::npos) << e.what();
    }
    ckpt_test::spit(path, bytes.substr(0, bytes.size() - 1));
    EXPECT_EQ(status_of([&] { l.load(ex, root.path(), {}); }), Status::Corrupt);
  }
  TmpDir root;
  EXPECT_EQ(status_of([&] {
              Checkpoint l;
              l.load(ex, root.path(), {});
            }),
            Status::IO);
  ckpt_test::spit(root / "MANIFEST.json", "{\"format\": \"smp-checkpoint\"");
  EXPECT_EQ(status_of([&] {
              Checkpoint l;
              l.load(ex, root.path(), {});
            }),
            Status::Corrupt);
}

TEST(Checkpoint, RejectsBadRegistrations) {
  Checkpoint c;
  float x = 0;
  EXPECT_EQ(status_of([&] { c.add("", Kind::Model, DType::F32, Piece::whole({1}, "x"), &x, false); }),
            Status::InvalidArgument);
  EXPECT_EQ(status_of([&] { c.add("__metadata__", Kind::Model, DType::F32, Piece::whole({1}, "x"), &x, false); }),
            Status::InvalidArgument);
  EXPECT_EQ(status_of([&] { c.add("a", Kind::Model, DType::F32, Piece::whole({1}, "x"), nullptr, false); }),
            Status::InvalidArgument);
  c.add("a", Kind::Model, DType::F32, Piece::whole({1}, "x"), &x, false);
  EXPECT_EQ(status_of([&] { c.add("a", Kind::Model, DType::F32, Piece::whole({1}, "x"), &x, false); }),
            Status::InvalidArgument);
  EXPECT_NO_THROW(c.add("a", Kind::Optimizer, DType::F32, Piece::whole({1}, "x"), &x, false));
  // A tensor the one rank only partly holds cannot be saved.
  Checkpoint p;
  float y[2] = {};
  p.add("p", Kind::Model, DType::F32, Piece::box({4}, {0}, {2}, "p"), y, false);
  TmpDir root;
  comm::SelfBootstrap ex;
  EXPECT_EQ(status_of([&] { p.save(ex, root.path(), {}); }), Status::InvalidArgument);
  EXPECT_TRUE(store::complete(root.path()).empty());
}

// Resume exactly: a toy training run (SGD with momentum on random data,
// a decaying learning rate, an RNG drawing the batches) stopped after 4
// steps, saved, and resumed in fresh objects continues to the same bits as
// the run that never stopped.
namespace {

struct Trainer {
  std::vector<float> w = std::vector<float>(64, 0.5f), mom = std::vector<float>(64, 0.0f);
  std::mt19937_64 rng{2024};
  int64_t step = 0;
  double lr = 0.1;
  void train_step() {
    std::normal_distribution<float> noise(0.0f, 1.0f);
    for (size_t i = 0; i < w.size(); ++i) {
      const float g = w[i] - noise(rng);  // gradient of 0.5 (w - x)^2
      mom[i] = 0.9f * mom[i] + g;
      w[i] -= static_cast<float>(lr) * mom[i];
    }
    ++step;
    lr *= 0.95;
  }
  void add_to(Checkpoint &c) {
    c.add("w", Kind::Model, DType::F32, Piece::whole({8, 8}, "w"), w.data(), false);
    c.add("w", Kind::Optimizer, DType::F32, Piece::whole({8, 8}, "m"), mom.data(), false);
  }
  void save_user(Checkpoint &c) const {
    std::ostringstream r;
    r << rng;
    c.set_user("rng", r.str());
    c.set_user("step", std::to_string(step));
    c.set_user("lr", std::string(reinterpret_cast<const char *>(&lr), sizeof lr));  // exact bits
  }
  void load_user(const Checkpoint &c) {
    std::string v;
    ASSERT_TRUE(c.user("rng", 0, &v));
    std::istringstream r(v);
    r >> rng;
    ASSERT_TRUE(c.user("step", 0, &v));
    step = std::stoll(v);
    ASSERT_TRUE(c.user("lr", 0, &v));
    ASSERT_EQ(v.size(), sizeof lr);
    std::memcpy(&lr, v.data(), sizeof lr);
  }
};

}  // namespace

TEST(Checkpoint, ResumesExactly) {
  Trainer straight;
  for (int s = 0; s < 10; ++s) straight.train_step();

  TmpDir root;
  comm::SelfBootstrap ex;
  {
    Trainer first;
    for (int s = 0; s < 4; ++s) first.train_step();
    Checkpoint c;
    first.add_to(c);
    first.save_user(c);
    c.save(ex, root.path(), {});
  }
  Trainer resumed;  // fresh state: weights, momentum, RNG, schedule all reset
  Checkpoint c;
  resumed.add_to(c);
  c.load(ex, root.path(), {});
  resumed.load_user(c);
  EXPECT_EQ(resumed.step, 4);
  for (int s = 4; s < 10; ++s) resumed.train_step();
  EXPECT_EQ(0, std::memcmp(resumed.w.data(), straight.w.data(), straight.w.size() * 4));
  EXPECT_EQ(0, std::memcmp(resumed.mom.data(), straight.mom.data(), straight.mom.size() * 4));
  EXPECT_EQ(resumed.rng(), straight.rng());
  EXPECT_EQ(resumed.lr, straight.lr);
}

namespace {

// A SelfBootstrap whose fail_at-th collective fails (an I/O error, as a
// dying network or disk would surface inside a save).
class FailingBootstrap final : public comm::Bootstrap {
 public:
  explicit FailingBootstrap(int fail_at) : fail_at_(fail_at) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void broadcast(void *bytes, size_t n, int root) override {
    step();
    inner_.broadcast(bytes, n, root);
  }
  std::vector<std::string> allgatherv(const std::string &mine) override {
    step();
    return inner_.allgatherv(mine);
  }
  void gatherv(const void *send, size_t n, void *recv, const size_t *counts, int root) override {
    step();
    inner_.gatherv(send, n, recv, counts, root);
  }
  int all_min(int v) override {
    step();
    return v;
  }
  void barrier() override { step(); }

 private:
  void step() {
    if (++calls_ == fail_at_) throw Error(Status::IO, "injected failure");
  }
  comm::SelfBootstrap inner_;
  int fail_at_, calls_ = 0;
};

std::vector<std::string> tmp_entries(const std::string &root) {
  std::vector<std::string> out;
  for (const auto &n : io::list_dir(root))
    if (n.compare(0, 5, ".tmp-") == 0 || n.compare(0, 5, ".del-") == 0 || n == "latest.tmp") out.push_back(n);
  return out;
}

}  // namespace

// A save that fails at any of its collectives leaves no temporary folder
// behind, and the previous checkpoint stays the one a load picks.
TEST(Checkpoint, FailedSaveLeavesNothingBehind) {
  TmpDir root;
  comm::SelfBootstrap ex;
  Model m;
  Checkpoint c;
  m.add_to(c);
  c.set_user("v", "first");
  c.save(ex, root.path(), {});
  c.set_user("v", "second");
  int failures = 0, before_commit = 0;
  for (int k = 1; k < 64; ++k) {
    FailingBootstrap bad(k);
    try {
      c.save(bad, root.path(), {});
      break;  // k is past the save's last collective
    } catch (const Error &e) {
      ++failures;
      EXPECT_EQ(e.status(), Status::IO) << e.what();
    }
    EXPECT_EQ(tmp_entries(root.path()), std::vector<std::string>{}) << "failure at collective " << k;
    // Before the commit the previous checkpoint stays current; a failure
    // after it (the last agreement) cannot undo a complete checkpoint, and
    // then the new one is current, whole. Either way load and `latest`
    // agree with complete().
    const auto all = store::complete(root.path());
    Checkpoint l;
    l.load(ex, root.path(), {});
    std::string v;
    ASSERT_TRUE(l.user("v", 0, &v));
    EXPECT_EQ(v, all.size() == 1 ? "first" : "second") << k;
    EXPECT_EQ(ckpt_test::slurp(root / "latest"), store::name_of(all.back()) + "\n") << k;
    if (all.size() == 1) ++before_commit;
  }
  EXPECT_GT(before_commit, 3);
  EXPECT_GT(failures, before_commit);
}

// Writing `latest` fails (here: a folder is in its way): the save fails on
// every rank and its checkpoint is taken back, so `latest` and a load agree
// on the previous one. A lagging `latest` is repaired by the next save.
TEST(Checkpoint, LatestNeverDisagreesWithWhatLoadPicks) {
  TmpDir root;
  comm::SelfBootstrap ex;
  Model m;
  Checkpoint c;
  m.add_to(c);
  c.set_user("v", "first");
  c.save(ex, root.path(), {});
  io::remove_tree(root / "latest");
  io::make_dirs(root / "latest/in-the-way");
  c.set_user("v", "second");
  EXPECT_NE(status_of([&] { c.save(ex, root.path(), {}); }), Status::Success);
  EXPECT_EQ(store::complete(root.path()), std::vector<uint64_t>{1});
  EXPECT_EQ(tmp_entries(root.path()), std::vector<std::string>{});
  io::remove_tree(root / "latest");
  ckpt_test::spit(root / "latest", store::name_of(0) + "\n");  // stale
  store::clean_leftovers(root.path());
  EXPECT_EQ(ckpt_test::slurp(root / "latest"), store::name_of(1) + "\n");
  const std::string dir = c.save(ex, root.path(), {});
  EXPECT_EQ(ckpt_test::slurp(root / "latest"), dir.substr(dir.rfind('/') + 1) + "\n");
  EXPECT_EQ(store::resolve(root.path()), dir);
}

// Registration refuses a tensor whose byte size overflows, at once (not at
// the first save), and oversized user content.
TEST(Checkpoint, OversizedRegistrationsAreInvalid) {
  Checkpoint c;
  uint32_t x = 0;
  const uint64_t big = uint64_t{1} << 62;
  EXPECT_EQ(status_of([&] {
              c.add("huge", Kind::Model, DType::F32, Piece::box({big}, {0}, {1}, "h"), &x, false);
            }),
            Status::InvalidArgument);
  EXPECT_EQ(status_of([&] { c.set_user("k", std::string(size_t{1} << 10, 'x')); }), Status::Success);
  EXPECT_LE(kMaxUserBytes, uint64_t{1} << 30);
}
