// A save killed with SIGKILL at random points never costs a checkpoint: a
// forked child saves over and over while the parent kills it after a random
// delay; afterwards the newest complete checkpoint loads (with valid
// checksums) and holds exactly the data its user content says it should,
// every complete checkpoint verifies, and a partial one is never chosen.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

#include "ckpt/checkpoint.h"
#include "ckpt/store.h"
#include "common/error.h"
#include "test_util.h"

using namespace smp;
using namespace smp::ckpt;
using ckpt_test::pattern;

namespace {

constexpr size_t kElems = size_t{3} << 20;  // 12 MiB per tensor, 2 tensors + optimizer

struct State {
  std::vector<uint32_t> a = std::vector<uint32_t>(kElems), b = std::vector<uint32_t>(kElems / 2),
                        o = std::vector<uint32_t>(kElems);
  void fill(uint32_t seed) {
    for (size_t i = 0; i < a.size(); ++i) a[i] = pattern(seed, i);
    for (size_t i = 0; i < b.size(); ++i) b[i] = pattern(seed + 1000, i);
    for (size_t i = 0; i < o.size(); ++i) o[i] = pattern(seed + 2000, i);
  }
  void add_to(Checkpoint &c, bool shard_opt) {
    c.add("a", Kind::Model, DType::F32, Piece::whole({kElems / 1024, 1024}, "a"), a.data(), false);
    c.add("b", Kind::Model, DType::I32, Piece::whole({kElems / 2}, "b"), b.data(), false);
    c.add("a", Kind::Optimizer, DType::F32, shard_opt ? Piece::flat({kElems / 1024, 1024}, 0, kElems, "o")
                                                      : Piece::whole({kElems / 1024, 1024}, "o"),
          o.data(), false);
  }
};

// Loads dir (a root or one checkpoint) and checks the data against the
// seed recorded in it; returns the seed.
uint32_t load_and_check(const std::string &path) {
  smp::comm::SelfBootstrap ex;
  State s;
  Checkpoint c;
  s.add_to(c, false);
  c.load(ex, path, {});
  std::string seed_text;
  EXPECT_TRUE(c.user("seed", 0, &seed_text));
  const uint32_t seed = static_cast<uint32_t>(std::stoul(seed_text));
  State want;
  want.fill(seed);
  EXPECT_TRUE(s.a == want.a && s.b == want.b && s.o == want.o) << path << " holds data other than seed " << seed;
  return seed;
}

}  // namespace

TEST(KillDuringSave, PreviousCheckpointSurvives) {
  ckpt_test::TmpDir root;
  {
    smp::comm::SelfBootstrap ex;
    State s;
    s.fill(1);
    Checkpoint c;
    s.add_to(c, false);
    c.set_user("seed", "1");
    c.save(ex, root.path(), {});
  }
  std::mt19937 rng(std::random_device{}());
  uint32_t last_seed = 1;
  int kills_mid_save = 0;
  for (int round = 0; round < 8; ++round) {
    const uint32_t base = 100 * static_cast<uint32_t>(round + 1);
    const bool sharded = round % 2 == 1;
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: save again and again until killed, keeping the newest 2.
      try {
        smp::comm::SelfBootstrap ex;
        State s;
        Checkpoint c;
        s.add_to(c, sharded);
        SaveOptions opt;
        opt.sharded = sharded;
        opt.keep_last = 2;
        opt.buffer_bytes = 1 << 20;
        for (uint32_t k = 0;; ++k) {
          s.fill(base + k);
          c.set_user("seed", std::to_string(base + k));
          c.save(ex, root.path(), opt);
        }
      } catch (...) {
        _exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 400));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited on its own with status " << status;

    // Every complete checkpoint verifies and holds consistent data; the
    // newest is what a plain load picks.
    const auto complete = store::complete(root.path());
    ASSERT_FALSE(complete.empty());
    for (uint64_t seq : complete) load_and_check(root / store::name_of(seq));
    const uint32_t seed = load_and_check(root.path());
    EXPECT_GE(seed, last_seed);
    last_seed = seed;
    for (const auto &n : io::list_dir(root.path()))
      if (n.compare(0, 5, ".tmp-") == 0) ++kills_mid_save;
  }
  // The delays are long enough that some kills land inside a save.
  EXPECT_GT(kills_mid_save, 0);
}
