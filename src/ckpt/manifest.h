// MANIFEST.json: written last into a checkpoint, it is what makes the
// checkpoint complete. It lists every file with its size and CRC32C, and
// every tensor with its global shape, dtype and the slice each file holds
// (for a consolidated checkpoint, each tensor whole in one file).
//
// The manifest guards itself too: its last field, "manifest_crc32c", is the
// CRC32C of every byte before that field, checked before anything is read
// from it (a flipped bit in a piece's offset would otherwise load as
// success with rows never written). Version 1 manifests, written before
// that field existed, are still read, without that protection.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/piece.h"
#include "ckpt/plan.h"
#include "ckpt/safetensors.h"

namespace smp::ckpt {

inline constexpr const char *kManifestName = "MANIFEST.json";
inline constexpr const char *kUserFileName = "user.safetensors";
// Bound on MANIFEST.json's size (about 300 bytes per piece: millions of
// pieces fit); a larger one is refused before it is read.
inline constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 30;

struct FileRecord {
  std::string name;
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

struct SourcePiece {
  std::string file;  // stores the piece under the tensor's own name
  Piece piece;
};

struct TensorRecord {
  std::string name;
  Kind kind = Kind::Model;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  std::vector<SourcePiece> pieces;
};

struct Manifest;
Manifest manifest_from_json(const std::string &text, const std::string &what);

struct Manifest {
  std::string mode;  // "consolidated" | "sharded"
  int world_size = 0;
  std::string topology;  // informational: the saving job's layout
  std::vector<FileRecord> files;
  std::vector<TensorRecord> tensors;

  // Lookups in O(log n) once index() has run (manifest_from_json runs it);
  // before that, or after files / tensors change, a linear scan.
  const TensorRecord *find(Kind kind, const std::string &name) const;
  const FileRecord *file(const std::string &name) const;
  void index();

 private:
  friend Manifest manifest_from_json(const std::string &text, const std::string &what);
  std::map<std::pair<int, std::string>, size_t> tensor_at_;
  std::map<std::string, size_t> file_at_;
};

// The whole MANIFEST.json text, sealed with its checksum.
std::string manifest_to_json(const Manifest &m);
// Seals a manifest body: `body` is the text up to the checksum field
// (ending in ",\n"); returns it with the field and the closing brace.
std::string seal_manifest(std::string body);
// Checks the checksum first, then structure, names (plain file names
// only), pieces inside their shapes, each tensor's pieces adding up to its
// element count, and each file's pieces fitting in its recorded size.
// Throws Corrupt naming `what`. Cheap: linear in the text (plus sorting).
Manifest manifest_from_json(const std::string &text, const std::string &what);
// The proof that each tensor's pieces tile it exactly (no gap, no
// overlap): O(R log P) in runs and pieces (check_tiling). Separate from
// parsing because its cost grows with the runs the pieces claim; callers
// run it once the files' real sizes bound those claims (read_manifest).
void check_manifest_tiling(const Manifest &m, const std::string &what);
// DIR/MANIFEST.json read (bounded size, regular file) and parsed; with
// check_files, every listed file must be a regular file of the recorded
// size, and the tiling proven. Corrupt names the file at fault.
Manifest read_manifest(const std::string &dir, bool check_files = true);
// Sharded data files record, in their header's "smp.pieces" metadata,
// which slice of its tensor each of their tensors is ("offsets/extents/
// begin,count", ';'-separated, in data order). The manifest says the same;
// a load compares the two, so a manifest edited consistently (resealed)
// still cannot send a piece to another piece's bytes. Files without the
// record (consolidated ones, whole tensors; older checkpoints) are not
// compared.
inline constexpr const char *kPiecesKey = "smp.pieces";
std::string piece_record(const Piece &p);
// The file's records, one per tensor of h (in h.tensors' order), or none;
// Corrupt if present with another count.
std::vector<std::string> piece_records(const Header &h, const std::string &what);

// DIR/rec.name has the recorded size and CRC32C, else Corrupt naming it;
// progress (may be empty) hears of every chunk read.
void verify_file(const std::string &dir, const FileRecord &rec, const std::function<void(uint64_t)> &progress);

}  // namespace smp::ckpt
