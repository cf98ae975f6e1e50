// The manifest guards itself and what it describes: a checksum over its own
// bytes, and the proof that each tensor's pieces tile it. Every single-bit
// flip of MANIFEST.json and of every data file's header is either rejected
// (SMP_ERR_CORRUPT naming the file) or harmless, proven by comparing the
// loaded tensors with the reference values the fixture was written from.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <functional>

#include "ckpt/checkpoint.h"
#include "ckpt/fileio.h"
#include "ckpt/manifest.h"
#include "ckpt/store.h"
#include "common/error.h"
#include "fuzz/manifest_fixture.h"
#include "test_util.h"

using namespace smp;
using namespace smp::ckpt;
using ckpt_test::slurp;
using ckpt_test::spit;
using ckpt_test::TmpDir;
namespace mf = manifest_fixture;

namespace {

// The load's outcome: success with the reference data, success with other
// data (never acceptable), or an error status with its message.
struct Outcome {
  Status status = Status::Success;
  bool same = false;
  std::string message;
};

Outcome try_load(const std::string &dir, bool verify) {
  Outcome o;
  try {
    // Two loads over different fills: an element no piece wrote differs.
    const mf::Loaded a = mf::load(dir, verify, 0), b = mf::load(dir, verify, 0xffffffffu);
    o.same = mf::matches_reference(a) && mf::matches_reference(b);
  } catch (const Error &e) {
    o.status = e.status();
    o.message = e.what();
  }
  return o;
}

// The body of a sealed manifest (everything before its checksum field).
std::string body_of(const std::string &text) { return text.substr(0, text.rfind("\"manifest_crc32c\"")); }

}  // namespace

TEST(Manifest, FixtureLoadsTheReference) {
  TmpDir dir;
  mf::write(dir.path());
  const Outcome o = try_load(dir.path(), true);
  ASSERT_EQ(o.status, Status::Success) << o.message;
  EXPECT_TRUE(o.same);
  // The reference itself can fail: a wrong value is seen.
  mf::Loaded l = mf::load(dir.path(), true, 0);
  l.data[1][7] ^= 1;
  EXPECT_FALSE(mf::matches_reference(l));
}

// The case: one flipped bit in a piece's offset, the manifest
// resealed so the checksum alone cannot catch it; the tiling proof must.
TEST(Manifest, TilingProofCatchesAShiftedPiece) {
  TmpDir dir;
  const std::string text = mf::write(dir.path());
  const std::string body = body_of(text);
  // rank 1's row piece "offset": [3,0] -> [2,0]: rows 2 twice, row 5 never.
  const std::string from = "\"file\":\"model-rank00001.safetensors\",\"offset\":[3,0]";
  const size_t at = body.find(from);
  ASSERT_NE(at, std::string::npos) << body;
  std::string bad = body;
  bad[at + from.size() - 4] = '2';
  spit(dir / kManifestName, seal_manifest(bad));
  Outcome o = try_load(dir.path(), true);
  EXPECT_EQ(o.status, Status::Corrupt) << o.message;
  EXPECT_NE(o.message.find("overlap"), std::string::npos) << o.message;
  EXPECT_NE(o.message.find(kManifestName), std::string::npos) << o.message;
  // The same flip without resealing: the checksum catches it first.
  spit(dir / kManifestName, bad + text.substr(body.size()));
  o = try_load(dir.path(), true);
  EXPECT_EQ(o.status, Status::Corrupt);
  EXPECT_NE(o.message.find("checksum"), std::string::npos) << o.message;
}

TEST(Manifest, RejectsBadStructure) {
  TmpDir dir;
  const std::string text = mf::write(dir.path());
  const std::string body = body_of(text);
  const auto reject = [&](const std::string &manifest, const char *expect) {
    spit(dir / kManifestName, manifest);
    const Outcome o = try_load(dir.path(), true);
    EXPECT_EQ(o.status, Status::Corrupt) << expect << ": " << o.message;
    EXPECT_NE(o.message.find(expect), std::string::npos) << o.message;
    EXPECT_NE(o.message.find(kManifestName), std::string::npos) << o.message;
  };
  const auto replaced = [&](std::string s, const std::string &from, const std::string &to) {
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  reject(replaced(body, "\"world_size\": 2", "\"world_size\": 1099511627776") + text.substr(body.size()),
         "checksum");
  reject(seal_manifest(replaced(body, "\"world_size\": 2", "\"world_size\": 1099511627776")), "world_size");
  reject(seal_manifest(replaced(body, "\"world_size\": 2", "\"world_size\": 0")), "world_size");
  reject(body.substr(0, body.size() - 2) + "\n}\n", "no checksum");  // a version 2 manifest without its seal
  reject(seal_manifest(replaced(body, "\"version\": 2", "\"version\": 1")), "version 1");
  reject(text + " ", "malformed");
  // A piece shrunk: the tensor's elements do not add up.
  reject(seal_manifest(replaced(body, "\"extent\":[3,4]},{\"file\":\"model-rank00001",
                                "\"extent\":[2,4]},{\"file\":\"model-rank00001")),
         "hold 20 of its 24");
  // Both of a tensor's pieces named in one file.
  std::string one_file = body;
  const size_t r1 = one_file.find("{\"file\":\"model-rank00001.safetensors\",\"offset\":[3,0]");
  ASSERT_NE(r1, std::string::npos);
  one_file[one_file.find("model-rank00001", r1) + 14] = '0';
  reject(seal_manifest(one_file), "two of its pieces");
  // A piece larger than its file can hold.
  reject(seal_manifest(replaced(replaced(body, "\"shape\":[7]", "\"shape\":[70000]"), "\"extent\":[7]",
                                "\"extent\":[70000]")),
         "does not fit in model-rank00000.safetensors");
  // A listed file that is not there.
  reject(seal_manifest(replaced(body, "\"user.safetensors\"", "\"user2.safetensors\"")), "missing");
}

TEST(Manifest, LegacyVersion1WithoutChecksumStillLoads) {
  TmpDir dir;
  const std::string body = body_of(mf::write(dir.path()));
  std::string v1 = body.substr(0, body.size() - 2) + "\n}\n";
  v1.replace(v1.find("\"version\": 2"), 12, "\"version\": 1");
  spit(dir / kManifestName, v1);
  const Outcome o = try_load(dir.path(), true);
  ASSERT_EQ(o.status, Status::Success) << o.message;
  EXPECT_TRUE(o.same);
}

// Every byte of MANIFEST.json, one bit flipped (bit i % 8 of byte i): the
// checksum rejects every one (CRC32C detects every single-bit error).
TEST(Manifest, EveryManifestBitFlipIsRejected) {
  TmpDir dir;
  const std::string text = mf::write(dir.path());
  int rejected = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    std::string t = text;
    t[i] = static_cast<char>(t[i] ^ (1 << (i % 8)));
    spit(dir / kManifestName, t);
    const Outcome o = try_load(dir.path(), false);
    ASSERT_NE(o.status, Status::Success) << "byte " << i << ": flip accepted (data " << (o.same ? "same" : "DIFFERENT")
                                         << ")";
    ASSERT_EQ(o.status, Status::Corrupt) << "byte " << i << ": " << o.message;
    ASSERT_NE(o.message.find(kManifestName), std::string::npos) << o.message;
    ++rejected;
  }
  EXPECT_EQ(rejected, static_cast<int>(text.size()));
}

// The same flips resealed, so that the checks behind the checksum face
// them: each is rejected (CORRUPT, or INVALID_ARGUMENT where the manifest
// now names another tensor than the one registered) or loads the
// reference data exactly; never a success with other data.
TEST(Manifest, EveryResealedFlipIsRejectedOrHarmless) {
  TmpDir dir;
  const std::string text = mf::write(dir.path());
  const std::string body = body_of(text);
  int rejected = 0, harmless = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    std::string b = body;
    b[i] = static_cast<char>(b[i] ^ (1 << (i % 8)));
    spit(dir / kManifestName, seal_manifest(b));
    const Outcome o = try_load(dir.path(), true);
    if (o.status == Status::Success) {
      ASSERT_TRUE(o.same) << "byte " << i << " ('" << body[i] << "'): success with data other than the reference";
      ++harmless;
    } else {
      ASSERT_TRUE(o.status == Status::Corrupt || o.status == Status::InvalidArgument)
          << "byte " << i << ": status " << static_cast<int>(o.status) << ": " << o.message;
      ++rejected;
    }
  }
  // Flips inside "topology" and the like are harmless; most are not.
  EXPECT_GT(rejected, static_cast<int>(body.size()) / 2) << harmless << " harmless";
}

// Every byte of every data file's header (length prefix and JSON), one bit
// flipped: with checksums verified every flip is rejected; without, each
// is rejected by the header checks or harmless.
TEST(Manifest, EveryHeaderBitFlipIsRejectedOrHarmless) {
  TmpDir dir;
  mf::write(dir.path());
  const Manifest m = read_manifest(dir.path());
  for (const auto &f : m.files) {
    const std::string path = dir / f.name;
    const std::string orig = slurp(path);
    const uint64_t header_end = 8 + Reader(path).header().data_start - 8;
    for (size_t i = 0; i < header_end; ++i) {
      std::string t = orig;
      t[i] = static_cast<char>(t[i] ^ (1 << (i % 8)));
      spit(path, t);
      Outcome o = try_load(dir.path(), true);
      ASSERT_EQ(o.status, Status::Corrupt) << f.name << " byte " << i << ": " << o.message;
      ASSERT_NE(o.message.find(f.name), std::string::npos) << o.message;
      o = try_load(dir.path(), false);
      if (o.status == Status::Success)
        ASSERT_TRUE(o.same) << f.name << " byte " << i << ": success with other data";
      else
        ASSERT_EQ(o.status, Status::Corrupt) << f.name << " byte " << i << ": " << o.message;
    }
    spit(path, orig);
  }
  EXPECT_TRUE(try_load(dir.path(), true).same);
}

// A shard replaced by a FIFO (or a folder) is refused at once, not read
// forever (verify, consolidate and load all open files the same way).
TEST(Manifest, NonRegularFilesAreRefused) {
  TmpDir dir;
  mf::write(dir.path());
  const std::string victim = dir / mf::shard_name(Kind::Model, 1);
  ASSERT_EQ(::unlink(victim.c_str()), 0);
  ASSERT_EQ(::mkfifo(victim.c_str(), 0644), 0);
  Outcome o = try_load(dir.path(), false);
  EXPECT_EQ(o.status, Status::Corrupt) << o.message;
  EXPECT_NE(o.message.find("not a regular file"), std::string::npos) << o.message;
  EXPECT_THROW(Reader r(victim), Error);
  ASSERT_EQ(::unlink(victim.c_str()), 0);
  io::make_dir(victim);
  o = try_load(dir.path(), false);
  EXPECT_EQ(o.status, Status::Corrupt) << o.message;
}

// Two same-shaped pieces swapped between their files, consistently and
// resealed: element counts, tiling and header shapes all still agree; the
// files' own records of their slices ("smp.pieces") are what catch it.
TEST(Manifest, SwappedPiecesAreCaughtByTheFilesRecords) {
  TmpDir dir;
  const std::string body = body_of(mf::write(dir.path()));
  const std::string r0 = "{\"file\":\"model-rank00000.safetensors\",\"offset\":[0,0],\"extent\":[3,4]}";
  const std::string r1 = "{\"file\":\"model-rank00001.safetensors\",\"offset\":[3,0],\"extent\":[3,4]}";
  const size_t a = body.find(r0 + "," + r1);
  ASSERT_NE(a, std::string::npos) << body;
  std::string swapped = body;
  std::string s0 = r0, s1 = r1;
  s0[s0.find("rank00000") + 8] = '1';
  s1[s1.find("rank00001") + 8] = '0';
  swapped.replace(a, r0.size() + 1 + r1.size(), s1 + "," + s0);
  spit(dir / kManifestName, seal_manifest(swapped));
  const Outcome o = try_load(dir.path(), true);
  EXPECT_EQ(o.status, Status::Corrupt) << o.message;
  EXPECT_NE(o.message.find("in the file but"), std::string::npos) << o.message;
}

// The manifest fuzzer's seed corpus is this fixture's real MANIFEST.json;
// it must stay that (regenerate: SMP_WRITE_MANIFEST_SEED=1 with the test).
TEST(Manifest, FuzzSeedIsTheFixturesManifest) {
  const char *seed = std::getenv("SMP_MANIFEST_SEED");
  if (!seed) GTEST_SKIP() << "SMP_MANIFEST_SEED not set (run through meson test)";
  TmpDir dir;
  const std::string text = mf::write(dir.path());
  if (std::getenv("SMP_WRITE_MANIFEST_SEED")) spit(seed, text);
  EXPECT_EQ(slurp(seed), text) << seed << " differs from the fixture's manifest; regenerate it";
}
