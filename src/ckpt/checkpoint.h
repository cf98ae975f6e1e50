// Saving and loading a hybrid-parallel job's tensors: every rank registers
// the pieces it holds (with where they live in memory), then all ranks call
// save() or load() together.
//
// save(): consolidated (pieces gathered to writer ranks and written as
// ordinary whole tensors, `model.safetensors` / `optimizer.safetensors`,
// split with a Hugging Face index when max_file_bytes asks for it, through
// buffers of at most buffer_bytes) or sharded (every rank writes its own
// pieces in parallel). Replicated pieces are written once. The checkpoint
// becomes a new ckpt-NNNNNNNN folder under the root, atomically (store.h).
//
// load(): any checkpoint into any registration: each rank reads exactly
// the byte ranges of its pieces (pread), whatever layout saved them.
// Every file's CRC32C is checked first (the files split among the ranks).
//
// Both are collective over a comm::Bootstrap (the group's control plane). A failure on one rank (bad disk,
// corrupt file) is reported on every rank with that rank's message, after
// the others have finished the phase, so no rank is left waiting.
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/manifest.h"
#include "ckpt/plan.h"
#include "ckpt/safetensors.h"
#include "comm/bootstrap.h"

namespace smp::ckpt {

// User content per key: it crosses the network whole and is held in
// memory on rank 0 at save, so it is bounded.
inline constexpr uint64_t kMaxUserBytes = uint64_t{1} << 30;

struct SaveOptions {
  bool sharded = false;
  int keep_last = 0;                      // keep the newest K complete checkpoints; 0 = all
  uint64_t buffer_bytes = uint64_t{64} << 20;  // consolidated: bytes gathered at once
  uint64_t max_file_bytes = 0;            // consolidated: split files above this; 0 = never
};

struct LoadOptions {
  bool verify = true;  // check every file's CRC32C before reading
};

// The open files of one checkpoint, kept across reads so each header is
// parsed once; at most kMaxOpen at a time (all closed beyond that), so a
// checkpoint of thousands of shard files never runs out of descriptors.
class ReaderCache {
 public:
  static constexpr size_t kMaxOpen = 256;
  struct File {
    std::unique_ptr<Reader> reader;
    std::vector<std::string> pieces;  // piece_records() of its header
  };
  const File &get(const std::string &path);

 private:
  std::map<std::string, File> open_;
};

class Checkpoint {
 public:
  // Registers this rank's piece of global tensor `name` (kind Model or
  // Optimizer), stored at data as a row-major buffer of piece.numel()
  // elements. Throws InvalidArgument if (kind, name) is already registered.
  void add(const std::string &name, Kind kind, DType dtype, const Piece &piece, void *data, bool replicated);
  void clear() {
    regs_.clear();
    reg_at_.clear();
  }
  size_t num_tensors() const { return regs_.size(); }

  // This rank's user content (step, schedules, RNG state, ...).
  void set_user(const std::string &key, std::string bytes);

  // Collective. Returns the new checkpoint's folder.
  std::string save(comm::Bootstrap &b, const std::string &root, const SaveOptions &opt);
  // Collective. path: a checkpoint folder, or a root (its newest complete
  // checkpoint). Fills every registered buffer; returns the folder loaded.
  std::string load(comm::Bootstrap &b, const std::string &path, const LoadOptions &opt);

  // Not collective: fills every registered buffer from checkpoint folder
  // dir, whose manifest m was read with read_manifest (checked, tiling
  // proven). For tools that read one checkpoint piece by piece.
  void read(const Manifest &m, const std::string &dir, ReaderCache &files) const;

  // After load(): user content key of the saving job's rank saved_rank.
  bool user(const std::string &key, int saved_rank, std::string *out) const;
  int loaded_world_size() const { return loaded_world_; }

 private:
  struct Reg {
    PieceDesc desc;
    void *data = nullptr;
  };
  const Reg *find(Kind kind, const std::string &name) const;
  // save() once the temporary folder exists: data, user content (every
  // rank's, "<rank>/<key>", on rank 0), manifest, commit.
  std::string write_and_commit(comm::Bootstrap &b, const std::string &root, uint64_t seq,
                               const std::vector<GlobalTensor> &table,
                               const std::vector<std::pair<std::string, std::string>> &users,
                               const SaveOptions &opt) const;
  // Consolidated data files (gather.cc); returns this rank's failure, if
  // any, after taking part in every collective.
  std::exception_ptr gather_and_write(comm::Bootstrap &b, const std::vector<GlobalTensor> &table,
                                      const std::vector<FilePlan> &files, const std::string &dir,
                                      const SaveOptions &opt, std::vector<FileRecord> *written) const;
  void load_piece(const Reg &reg, const Manifest &m, const std::string &dir, ReaderCache &files) const;

  std::vector<Reg> regs_;
  std::map<std::pair<int, std::string>, size_t> reg_at_;  // (kind, name) -> index in regs_
  std::map<std::string, std::string> user_;
  int loaded_world_ = 0;
  std::map<std::pair<int, std::string>, std::string> loaded_user_;
};

}  // namespace smp::ckpt
