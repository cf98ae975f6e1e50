// What a checkpoint holds, worked out identically on every rank from every
// rank's registered pieces: one row per global tensor with its owners
// (replicas deduplicated), checked for consistency and exact coverage, and
// for consolidated saves, which file each tensor goes to and who writes it.
// Pure: no I/O, no communication.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "ckpt/piece.h"
#include "common/dtype.h"

namespace smp::ckpt {

// Model parameters and optimizer state go to separate files, so a tensor
// name may appear once in each.
enum class Kind { Model = 0, Optimizer = 1 };
const char *kind_name(Kind k);  // "model", "optimizer"

// One rank's registration of one piece (no data pointer: this travels).
struct PieceDesc {
  std::string name;
  Kind kind = Kind::Model;
  DType dtype = DType::F32;
  Piece piece;
  bool replicated = false;  // identical copies may exist on other ranks
};

// A rank's descriptors as JSON (they travel in the save's metadata) and
// back. Throws Corrupt on a malformed one (it crossed the network).
nlohmann::ordered_json descs_to_json(const std::vector<PieceDesc> &descs);
std::vector<PieceDesc> descs_from_json(const nlohmann::ordered_json &v);

struct Owner {
  int rank = 0;
  Piece piece;
};

struct GlobalTensor {
  std::string name;
  Kind kind = Kind::Model;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  std::vector<Owner> owners;  // disjoint pieces covering the tensor, rank order
  uint64_t bytes() const;
};

// Every rank's descriptors -> the global table, sorted by (kind, name).
// Throws InvalidArgument if ranks disagree on a tensor's dtype or shape,
// if two ranks hold the same elements without both flagging the piece
// replicated, if pieces overlap partially, or if elements are missing.
std::vector<GlobalTensor> build_table(const std::vector<std::vector<PieceDesc>> &per_rank);

// Consolidated layout: which file each tensor goes to.
struct FilePlan {
  std::string name;  // "model.safetensors", "model-00001-of-00002.safetensors"
  Kind kind = Kind::Model;
  int writer = 0;               // rank that writes it
  std::vector<size_t> tensors;  // indices into the table, in file order
  uint64_t bytes = 0;
};
// max_file_bytes == 0: one file per kind. Files are dealt to ranks round
// robin so that several writers work at once.
std::vector<FilePlan> plan_files(const std::vector<GlobalTensor> &table, uint64_t max_file_bytes, int nranks);

}  // namespace smp::ckpt
