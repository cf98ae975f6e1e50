// Checkpoint::save: the collective protocol (see checkpoint.h, store.h).
#include <cstdio>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/crc32c.h"
#include "ckpt/json.h"
#include "ckpt/fileio.h"
#include "ckpt/manifest.h"
#include "ckpt/safetensors.h"
#include "ckpt/store.h"
#include "ckpt/write_queue.h"
#include "common/error.h"

namespace smp::ckpt {
namespace {

std::string shard_file(Kind kind, int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-rank%05d.safetensors", rank);
  return kind_name(kind) + std::string(buf);
}

using json::Json;

// The save's metadata crosses ranks as one nlohmann::json document per
// rank and phase, CBOR-encoded: user content is raw bytes (binary in CBOR,
// where JSON text would need an escape scheme of its own).
std::string to_wire(const Json &doc) {
  const std::vector<uint8_t> bytes = Json::to_cbor(doc);
  return std::string(bytes.begin(), bytes.end());
}

Json from_wire(const std::string &bytes, const char *what) {
  try {
    return Json::from_cbor(bytes);
  } catch (const nlohmann::json::exception &e) {
    throw Error(Status::Internal, std::string("malformed ") + what + " from another rank: " + e.what());
  }
}

// What a rank tells every other before a save: the pieces it registered
// (every rank builds the same table from them) and its user content (rank
// 0 writes it).
std::string rank_doc(const std::vector<PieceDesc> &pieces, const std::map<std::string, std::string> &user) {
  Json u = Json::object();
  for (const auto &[k, v] : user) json::append(u, k, Json::binary(std::vector<uint8_t>(v.begin(), v.end())));
  return to_wire({{"pieces", descs_to_json(pieces)}, {"user", std::move(u)}});
}

// The files a rank wrote, for rank 0's manifest.
std::string files_doc(const std::vector<FileRecord> &written) {
  Json files = Json::array();
  for (const auto &r : written) files.push_back({{"name", r.name}, {"bytes", r.bytes}, {"crc32c", r.crc32c}});
  return to_wire(files);
}

std::vector<FileRecord> files_from_doc(const std::string &bytes) {
  const Json files = from_wire(bytes, "file records");
  std::vector<FileRecord> out;
  try {
    for (const auto &f : files)
      out.push_back({f.at("name").get<std::string>(), f.at("bytes").get<uint64_t>(), f.at("crc32c").get<uint32_t>()});
  } catch (const nlohmann::json::exception &e) {
    throw Error(Status::Internal, std::string("malformed file records from another rank: ") + e.what());
  }
  return out;
}

// Hugging Face's model.safetensors.index.json, indented as it writes it.
std::string hf_index(const std::vector<GlobalTensor> &table, const std::vector<FilePlan> &files, Kind kind) {
  uint64_t total = 0;
  json::Json map = json::Json::object();
  for (const auto &f : files) {
    if (f.kind != kind) continue;
    total += f.bytes;
    for (size_t t : f.tensors) json::append(map, table[t].name, f.name);
  }
  const json::Json index = {{"metadata", {{"total_size", total}}}, {"weight_map", std::move(map)}};
  return json::dump(index, "checkpoint index", 2) + "\n";
}

}  // namespace

std::string Checkpoint::save(comm::Bootstrap &b, const std::string &root, const SaveOptions &opt) {
  if (root.empty()) invalid("checkpoint folder is empty");
  if (opt.keep_last < 0) invalid("keep_last must be >= 0");
  if (opt.buffer_bytes < 4096) invalid("buffer_bytes must be at least 4096");
  const int me = b.rank();

  // 1. Every rank's document, gathered once: every rank learns every piece
  // and validates the same table, so a bad registration fails on every
  // rank alike, before any file exists; rank 0 keeps the user content.
  std::vector<PieceDesc> mine;
  for (const auto &r : regs_) mine.push_back(r.desc);
  std::vector<std::vector<PieceDesc>> per_rank;
  std::vector<std::pair<std::string, std::string>> users;  // "<rank>/<key>", bytes
  const std::vector<std::string> docs = b.allgatherv(rank_doc(mine, user_));
  for (size_t r = 0; r < docs.size(); ++r) {
    const Json doc = from_wire(docs[r], "save metadata");
    if (!doc.is_object() || !doc.contains("pieces") || !doc.contains("user") || !doc.at("user").is_object())
      throw Error(Status::Internal, "malformed save metadata from rank " + std::to_string(r));
    per_rank.push_back(descs_from_json(doc.at("pieces")));
    if (me != 0) continue;
    for (const auto &[k, v] : doc.at("user").items()) {
      if (!v.is_binary()) throw Error(Status::Internal, "malformed user content from rank " + std::to_string(r));
      const auto &bytes = v.get_binary();
      users.emplace_back(std::to_string(r) + "/" + k, std::string(bytes.begin(), bytes.end()));
    }
  }
  const std::vector<GlobalTensor> table = build_table(per_rank);

  // 2. Rank 0 picks the sequence number and creates the temporary folder.
  uint64_t seq = 0;
  std::exception_ptr err;
  if (me == 0) {
    try {
      io::make_dirs(root);
      store::clean_leftovers(root);
      seq = store::next_seq(root);
      io::make_dir(io::join(root, store::tmp_name_of(seq)));
    } catch (...) {
      err = std::current_exception();
    }
  }
  // From here a failure anywhere fails every rank through agree(), which
  // every rank reaches only once it has stopped writing; rank 0 (which
  // chose seq, so knows the folder) then removes the temporary folder, so
  // a failed save holds no disk.
  try {
    comm::agree(b, err);
    b.broadcast(&seq, sizeof seq, 0);
    return write_and_commit(b, root, seq, table, users, opt);
  } catch (...) {
    if (me == 0 && seq > 0) {
      try {
        io::remove_tree(io::join(root, store::tmp_name_of(seq)));
      } catch (...) {  // the save's own error is the one to report
      }
    }
    throw;
  }
}

std::string Checkpoint::write_and_commit(comm::Bootstrap &b, const std::string &root, uint64_t seq,
                                         const std::vector<GlobalTensor> &table,
                                         const std::vector<std::pair<std::string, std::string>> &users,
                                         const SaveOptions &opt) const {
  const int me = b.rank(), nranks = b.size();
  std::exception_ptr err;
  const std::string tmp = io::join(root, store::tmp_name_of(seq));

  // 3. Data files.
  Manifest m;
  m.mode = opt.sharded ? "sharded" : "consolidated";
  m.world_size = nranks;
  m.topology = b.describe();
  std::vector<FileRecord> written;
  std::vector<FilePlan> files;
  if (opt.sharded) {
    for (const auto &t : table) {
      TensorRecord rec{t.name, t.kind, t.dtype, t.shape, {}};
      for (const auto &o : t.owners) rec.pieces.push_back({shard_file(t.kind, o.rank), o.piece});
      m.tensors.push_back(std::move(rec));
    }
    try {
      for (Kind kind : {Kind::Model, Kind::Optimizer}) {
        std::vector<TensorData> data;
        std::string records;  // which slice each is, for the load to compare with the manifest
        for (const auto &t : table)
          for (const auto &o : t.owners)
            if (o.rank == me && t.kind == kind) {
              data.push_back({TensorSpec{t.name, t.dtype, o.piece.local_shape()}, find(kind, t.name)->data});
              records += piece_record(o.piece) + ";";
            }
        if (data.empty()) continue;
        const std::string name = shard_file(kind, me);
        const FileDigest d = write_file(io::join(tmp, name), data, {{kPiecesKey, records}});
        written.push_back({name, d.size, d.crc32c});
      }
    } catch (...) {
      err = std::current_exception();
    }
  } else {
    files = plan_files(table, opt.max_file_bytes, nranks);
    for (const auto &t : table) m.tensors.push_back({t.name, t.kind, t.dtype, t.shape, {}});
    for (const auto &f : files)
      for (size_t t : f.tensors) m.tensors[t].pieces.push_back({f.name, Piece::whole(table[t].shape, table[t].name)});
    err = gather_and_write(b, table, files, tmp, opt, &written);
  }

  // 4. User content of every rank (gathered in step 1), written by rank 0.
  if (me == 0 && !err) {
    try {
      std::vector<TensorData> data;
      for (const auto &kv : users)
        data.push_back({TensorSpec{kv.first, DType::U8, {kv.second.size()}}, kv.second.data()});
      const FileDigest d = write_file(io::join(tmp, kUserFileName), data,
                                      {{"format", "smp user content"}, {"world_size", std::to_string(nranks)}});
      written.push_back({kUserFileName, d.size, d.crc32c});
      for (Kind kind : {Kind::Model, Kind::Optimizer}) {
        size_t n = 0;
        for (const auto &f : files) n += f.kind == kind;
        if (n < 2) continue;
        const std::string name = std::string(kind_name(kind)) + ".safetensors.index.json";
        const std::string text = hf_index(table, files, kind);
        io::write_file_atomic(io::join(tmp, name), text);
        written.push_back({name, text.size(), crc32c(text.data(), text.size())});
      }
    } catch (...) {
      err = std::current_exception();
    }
  }

  // 5. Rank 0 learns every file, then writes the manifest last and commits.
  const auto recs = b.allgatherv(files_doc(written));
  comm::agree(b, err);
  if (me == 0) {
    try {
      for (const auto &s : recs)
        for (auto &r : files_from_doc(s)) m.files.push_back(std::move(r));
      const std::string text = manifest_to_json(m);
      io::write_file_atomic(io::join(tmp, kManifestName), text);
      store::commit(root, seq);
    } catch (...) {
      err = std::current_exception();
    }
  }
  comm::agree(b, err);
  // The checkpoint is saved; failing to delete old ones does not unsave it
  // (the next save tries again), so it is a warning, not the save's error.
  if (me == 0) {
    try {
      store::prune(root, opt.keep_last);
    } catch (const Error &e) {
      std::fprintf(stderr, "smp: warning: could not remove old checkpoints: %s\n", e.what());
    }
  }
  // Every rank knows where rank 0 committed it (store::commit's rule).
  return io::join(root, store::name_of(seq));
}

}  // namespace smp::ckpt
