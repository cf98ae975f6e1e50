// MANIFEST.json: written last into a checkpoint, it is what makes the
// checkpoint complete. It lists every file with its size and CRC32C, and
// every tensor with its global shape, dtype and the slice each file holds
// (for a consolidated checkpoint, each tensor whole in one file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/piece.h"
#include "ckpt/plan.h"

namespace smp::ckpt {

inline constexpr const char *kManifestName = "MANIFEST.json";
inline constexpr const char *kUserFileName = "user.safetensors";

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

struct Manifest {
  std::string mode;  // "consolidated" | "sharded"
  int world_size = 0;
  std::string topology;  // informational: the saving job's layout
  std::vector<FileRecord> files;
  std::vector<TensorRecord> tensors;

  const TensorRecord *find(Kind kind, const std::string &name) const;
  const FileRecord *file(const std::string &name) const;
};

std::string manifest_to_json(const Manifest &m);
// Validates structure, names (plain file names only), pieces inside their
// shapes; throws Corrupt naming `what`.
Manifest manifest_from_json(const std::string &text, const std::string &what);

}  // namespace smp::ckpt
