// A small sharded checkpoint as two ranks would save it, built by hand from
// the format's pieces (safetensors writer + manifest_to_json) so one
// process can make it: rows, columns (many runs per piece), flat ranges of
// optimizer state, a tensor held whole by one rank, user content. Shared by
// the manifest bit-flip test (tests/unit/ckpt) and the manifest fuzzer
// (tests/unit/ckpt/fuzz), whose seed corpus is this checkpoint's MANIFEST.json.
//
// Every element's expected value is a function of (tensor, position) alone
// (value()), the independent reference a load is compared with.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/fileio.h"
#include "ckpt/manifest.h"
#include "ckpt/safetensors.h"
#include "common/error.h"

namespace manifest_fixture {

using smp::DType;
using smp::ckpt::Kind;
using smp::ckpt::Piece;

struct Tensor {
  const char *name;
  Kind kind;
  std::vector<uint64_t> shape;
  uint32_t seed;
  Piece piece[2];  // rank 0's, rank 1's (numel 0: that rank holds none)
};

inline std::vector<Tensor> tensors() {
  return {
      {"rows", Kind::Model, {6, 4}, 1,
       {Piece::box({6, 4}, {0, 0}, {3, 4}, "r0"), Piece::box({6, 4}, {3, 0}, {3, 4}, "r1")}},
      {"cols", Kind::Model, {5, 6}, 2,
       {Piece::box({5, 6}, {0, 0}, {5, 2}, "c0"), Piece::box({5, 6}, {0, 2}, {5, 4}, "c1")}},
      {"whole", Kind::Model, {7}, 3, {Piece::whole({7}, "w0"), Piece::flat({7}, 0, 0, "w1")}},
      {"rows", Kind::Optimizer, {6, 4}, 4,
       {Piece::flat({6, 4}, 0, 10, "o0"), Piece::flat({6, 4}, 10, 14, "o1")}},
      {"cols", Kind::Optimizer, {5, 6}, 5,
       // ranges of the column boxes: a sharded optimizer over tp slices
       {Piece::box_range({5, 6}, {0, 0}, {5, 2}, 0, 10, "p0"),
        Piece::box_range({5, 6}, {0, 2}, {5, 4}, 0, 20, "p1")}},
  };
}

// Element at global row-major position i of the tensor with this seed.
inline uint32_t value(uint32_t seed, uint64_t i) {
  uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(seed) << 40);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  return static_cast<uint32_t>(x ^ (x >> 29));
}

inline std::string shard_name(Kind k, int rank) {
  return std::string(smp::ckpt::kind_name(k)) + "-rank0000" + std::to_string(rank) + ".safetensors";
}

// Writes the checkpoint into dir (which must exist); returns the manifest
// text written.
inline std::string write(const std::string &dir) {
  namespace ck = smp::ckpt;
  ck::Manifest m;
  m.mode = "sharded";
  m.world_size = 2;
  m.topology = "pp=1 tp=2 rdp=1";
  std::vector<ck::FileRecord> files;
  for (int rank = 0; rank < 2; ++rank)
    for (Kind kind : {Kind::Model, Kind::Optimizer}) {
      std::vector<std::vector<uint32_t>> bufs;
      std::vector<ck::TensorData> data;
      std::string records;  // as a sharded save records its slices
      for (const auto &t : tensors()) {
        const Piece &p = t.piece[rank];
        if (t.kind != kind || p.numel() == 0) continue;
        std::vector<uint32_t> local(p.numel());
        for (uint64_t r = 0; r < p.num_runs(); ++r) {
          const ck::Run run = p.run_at(r);
          for (uint64_t k = 0; k < run.len; ++k) local[run.local + k] = value(t.seed, run.global + k);
        }
        bufs.push_back(std::move(local));
        records += ck::piece_record(p) + ";";
        data.push_back({ck::TensorSpec{t.name, DType::F32, p.local_shape()}, bufs.back().data()});
      }
      const std::string name = shard_name(kind, rank);
      const ck::FileDigest d = ck::write_file(ck::io::join(dir, name), data, {{ck::kPiecesKey, records}});
      m.files.push_back({name, d.size, d.crc32c});
    }
  const std::vector<std::pair<std::string, std::string>> user = {{"0/step", "17"}};
  std::vector<ck::TensorData> ud = {{ck::TensorSpec{"0/step", DType::U8, {2}}, user[0].second.data()}};
  const ck::FileDigest d = ck::write_file(ck::io::join(dir, ck::kUserFileName), ud,
                                          {{"format", "smp user content"}, {"world_size", "2"}});
  m.files.push_back({ck::kUserFileName, d.size, d.crc32c});
  for (const auto &t : tensors()) {
    ck::TensorRecord rec{t.name, t.kind, DType::F32, t.shape, {}};
    for (int rank = 0; rank < 2; ++rank)
      if (t.piece[rank].numel() > 0) rec.pieces.push_back({shard_name(t.kind, rank), t.piece[rank]});
    m.tensors.push_back(std::move(rec));
  }
  const std::string text = ck::manifest_to_json(m);
  const int fd = ck::io::create_write(ck::io::join(dir, ck::kManifestName));
  ck::io::write_all(fd, text.data(), text.size(), "manifest");
  ck::io::close_fd(fd, "manifest");
  return text;
}

// What a load of dir into whole tensors gives.
struct Loaded {
  std::vector<std::vector<uint32_t>> data;  // per tensor, row-major
};

// Loads dir into whole buffers each filled with `fill` first (so an
// element a load never wrote shows). Throws what the load throws.
inline Loaded load(const std::string &dir, bool verify, uint32_t fill) {
  namespace ck = smp::ckpt;
  Loaded out;
  ck::Checkpoint c;
  const auto ts = tensors();
  out.data.reserve(ts.size());
  for (const auto &t : ts) {
    uint64_t n = 1;
    for (uint64_t x : t.shape) n *= x;
    out.data.emplace_back(n, fill);
    c.add(t.name, t.kind, DType::F32, Piece::whole(t.shape, t.name), out.data.back().data(), false);
  }
  smp::comm::SelfBootstrap ex;
  ck::LoadOptions opt;
  opt.verify = verify;
  c.load(ex, dir, opt);
  return out;
}

// The reference: what every tensor holds.
inline bool matches_reference(const Loaded &l) {
  const auto ts = tensors();
  for (size_t t = 0; t < ts.size(); ++t)
    for (uint64_t i = 0; i < l.data[t].size(); ++i)
      if (l.data[t][i] != value(ts[t].seed, i)) return false;
  return true;
}

}  // namespace manifest_fixture
