// Checkpoint::save: the collective protocol (see checkpoint.h, store.h).
#include <cstdio>
#include <cstring>
#include <memory>

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

std::string encode_records(const std::vector<FileRecord> &recs) {
  std::string s;
  for (const auto &r : recs) s += r.name + "\t" + std::to_string(r.bytes) + "\t" + std::to_string(r.crc32c) + "\n";
  return s;
}

std::vector<FileRecord> decode_records(const std::string &s) {
  std::vector<FileRecord> out;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t t1 = s.find('\t', pos), t2 = s.find('\t', t1 + 1), nl = s.find('\n', t2 + 1);
    if (t1 == std::string::npos || t2 == std::string::npos || nl == std::string::npos)
      throw Error(Status::Internal, "malformed file record");
    out.push_back({s.substr(pos, t1 - pos), std::stoull(s.substr(t1 + 1, t2 - t1 - 1)),
                   static_cast<uint32_t>(std::stoul(s.substr(t2 + 1, nl - t2 - 1)))});
    pos = nl + 1;
  }
  return out;
}

// Length-prefixed key/value pairs: user content crossing to rank 0.
std::string encode_user(const std::map<std::string, std::string> &m) {
  std::string s;
  for (const auto &[k, v] : m) {
    for (const std::string *x : {&k, &v}) {
      const uint64_t n = x->size();
      s.append(reinterpret_cast<const char *>(&n), sizeof n);
      s += *x;
    }
  }
  return s;
}

std::vector<std::pair<std::string, std::string>> decode_user(const std::string &s) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = 0;
  auto take = [&](std::string &dst) {
    uint64_t n;
    if (s.size() - pos < sizeof n) throw Error(Status::Internal, "malformed user content");
    std::memcpy(&n, s.data() + pos, sizeof n);
    pos += sizeof n;
    if (s.size() - pos < n) throw Error(Status::Internal, "malformed user content");
    dst = s.substr(pos, static_cast<size_t>(n));
    pos += static_cast<size_t>(n);
  };
  while (pos < s.size()) {
    std::pair<std::string, std::string> kv;
    take(kv.first);
    take(kv.second);
    out.push_back(std::move(kv));
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

std::string Checkpoint::save(Exchange &ex, const std::string &root, const SaveOptions &opt) {
  if (root.empty()) invalid("checkpoint folder is empty");
  if (opt.keep_last < 0) invalid("keep_last must be >= 0");
  if (opt.buffer_bytes < 4096) invalid("buffer_bytes must be at least 4096");
  const int me = ex.rank();

  // 1. Every rank learns every piece; all validate the same table, so a
  // bad registration fails on every rank alike, before any file exists.
  std::vector<PieceDesc> mine;
  for (const auto &r : regs_) mine.push_back(r.desc);
  std::vector<std::vector<PieceDesc>> per_rank;
  for (const auto &s : allgather_strings(ex, encode_descs(mine))) per_rank.push_back(decode_descs(s));
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
    agree(ex, err);
    ex.broadcast(&seq, sizeof seq, 0);
    return write_and_commit(ex, root, seq, table, opt);
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

std::string Checkpoint::write_and_commit(Exchange &ex, const std::string &root, uint64_t seq,
                                         const std::vector<GlobalTensor> &table, const SaveOptions &opt) const {
  const int me = ex.rank(), nranks = ex.size();
  std::exception_ptr err;
  const std::string tmp = io::join(root, store::tmp_name_of(seq));

  // 3. Data files.
  Manifest m;
  m.mode = opt.sharded ? "sharded" : "consolidated";
  m.world_size = nranks;
  m.topology = ex.describe();
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
    err = gather_and_write(ex, table, files, tmp, opt, &written);
  }

  // 4. User content of every rank, written by rank 0.
  const auto users = allgather_strings(ex, encode_user(user_));
  if (me == 0 && !err) {
    try {
      std::vector<std::pair<std::string, std::string>> flat;
      for (int r = 0; r < nranks; ++r)
        for (auto &kv : decode_user(users[static_cast<size_t>(r)]))
          flat.emplace_back(std::to_string(r) + "/" + kv.first, std::move(kv.second));
      std::vector<TensorData> data;
      for (const auto &kv : flat)
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
  const auto recs = allgather_strings(ex, encode_records(written));
  agree(ex, err);
  std::string final_path;
  if (me == 0) {
    try {
      for (const auto &s : recs)
        for (auto &r : decode_records(s)) m.files.push_back(std::move(r));
      const std::string text = manifest_to_json(m);
      io::write_file_atomic(io::join(tmp, kManifestName), text);
      final_path = store::commit(root, seq);
    } catch (...) {
      err = std::current_exception();
    }
  }
  agree(ex, err);
  // The checkpoint is saved; failing to delete old ones does not unsave it
  // (the next save tries again), so it is a warning, not the save's error.
  if (me == 0) {
    try {
      store::prune(root, opt.keep_last);
    } catch (const Error &e) {
      std::fprintf(stderr, "smp: warning: could not remove old checkpoints: %s\n", e.what());
    }
  }
  return broadcast_string(ex, final_path, 0);
}

}  // namespace smp::ckpt
