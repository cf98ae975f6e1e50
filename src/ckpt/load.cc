// Checkpoint::load: resolve, verify checksums, read each rank's slices.
#include <algorithm>
#include <cstring>
#include <memory>

#include "ckpt/checkpoint.h"
#include "ckpt/crc32c.h"
#include "ckpt/fileio.h"
#include "ckpt/safetensors.h"
#include "ckpt/store.h"
#include "common/error.h"

namespace smp::ckpt {
namespace {

// Reads of nearby slices are merged when the bytes skipped are at most
// kMaxGap, into a bounce buffer of at most kMaxSpan: many small preads
// (a column slice of a row-major matrix) cost more than reading the gaps.
constexpr uint64_t kMaxGap = 64 << 10;
constexpr uint64_t kMaxSpan = 8 << 20;

// Copies the overlaps (b = the file's piece at byte `base` of the data)
// into dst (a = the registered piece).
void read_overlaps(const Reader &rd, uint64_t base, const std::vector<Overlap> &ovs, size_t es, char *dst) {
  std::vector<char> bounce;
  for (size_t i = 0; i < ovs.size();) {
    // Extend a group while the next slice follows closely in the file.
    size_t j = i + 1;
    const uint64_t start = ovs[i].b_local * es;
    uint64_t end = (ovs[i].b_local + ovs[i].len) * es;
    while (j < ovs.size()) {
      const uint64_t s = ovs[j].b_local * es, e = (ovs[j].b_local + ovs[j].len) * es;
      if (s < end || s - end > kMaxGap || e - start > kMaxSpan) break;
      end = e;
      ++j;
    }
    if (j == i + 1) {
      rd.read_data(base + start, dst + ovs[i].a_local * es, static_cast<size_t>(ovs[i].len * es));
    } else {
      bounce.resize(static_cast<size_t>(end - start));
      rd.read_data(base + start, bounce.data(), bounce.size());
      for (size_t k = i; k < j; ++k)
        std::memcpy(dst + ovs[k].a_local * es, bounce.data() + (ovs[k].b_local * es - start),
                    static_cast<size_t>(ovs[k].len * es));
    }
    i = j;
  }
}

}  // namespace

const ReaderCache::File &ReaderCache::get(const std::string &path) {
  auto it = open_.find(path);
  if (it != open_.end()) return it->second;
  if (open_.size() >= kMaxOpen) open_.clear();
  File f;
  f.reader = std::make_unique<Reader>(path);
  f.pieces = piece_records(f.reader->header(), path);
  return open_.emplace(path, std::move(f)).first->second;
}

void Checkpoint::read(const Manifest &m, const std::string &dir, ReaderCache &files) const {
  for (const auto &r : regs_) load_piece(r, m, dir, files);
}

void Checkpoint::load_piece(const Reg &reg, const Manifest &m, const std::string &dir, ReaderCache &files) const {
  const PieceDesc &d = reg.desc;
  const std::string what = std::string(kind_name(d.kind)) + " tensor \"" + d.name + "\"";
  const TensorRecord *rec = m.find(d.kind, d.name);
  if (!rec) invalid(dir + " has no " + what);
  if (rec->dtype != d.dtype || rec->shape != d.piece.shape())
    invalid(what + ": saved as " + dtype_name(rec->dtype) + " " + Piece::whole(rec->shape, what).describe() +
            ", registered as " + dtype_name(d.dtype) + " " + d.piece.describe());
  const size_t es = dtype_size(d.dtype);
  uint64_t got = 0;
  for (const auto &src : rec->pieces) {
    const std::vector<Overlap> ovs = overlaps(d.piece, src.piece);
    if (ovs.empty()) continue;
    const ReaderCache::File &file = files.get(io::join(dir, src.file));
    const Reader &rd = *file.reader;
    const TensorEntry *e = rd.header().find(d.name);
    if (!e || e->smp_dtype != static_cast<int>(d.dtype) || e->shape != src.piece.local_shape())
      throw Error(Status::Corrupt, rd.path() + ": " + what + " is missing or does not match the manifest");
    if (!file.pieces.empty()) {
      const std::string &rec = file.pieces[static_cast<size_t>(e - rd.header().tensors.data())];
      if (rec != piece_record(src.piece))
        throw Error(Status::Corrupt, rd.path() + ": " + what + " is the slice " + rec + " in the file but " +
                                         piece_record(src.piece) + " in the manifest");
    }
    read_overlaps(rd, e->begin, ovs, es, static_cast<char *>(reg.data));
    for (const auto &o : ovs) got += o.len;
  }
  if (got != d.piece.numel())
    throw Error(Status::Corrupt, dir + ": " + what + " " + d.piece.describe() + ": the checkpoint supplies " +
                                     std::to_string(got) + " of its " + std::to_string(d.piece.numel()) + " elements");
}

std::string Checkpoint::load(comm::Bootstrap &b, const std::string &path, const LoadOptions &opt) {
  if (path.empty()) invalid("checkpoint path is empty");
  const int me = b.rank(), nranks = b.size();
  std::exception_ptr err;

  // Rank 0 decides which checkpoint, so all ranks read the same one even
  // if a save finishes meanwhile.
  std::string dir;
  if (me == 0) {
    try {
      dir = store::resolve(path);
    } catch (...) {
      err = std::current_exception();
    }
  }
  comm::agree(b, err);
  dir = comm::broadcast_string(b, dir, 0);

  Manifest m;
  try {
    m = read_manifest(dir);
  } catch (...) {
    err = std::current_exception();
  }
  comm::agree(b, err);

  if (opt.verify) {
    try {
      for (size_t i = static_cast<size_t>(me); i < m.files.size(); i += static_cast<size_t>(nranks))
        verify_file(dir, m.files[i], nullptr);
    } catch (...) {
      err = std::current_exception();
    }
    comm::agree(b, err);
  }

  std::map<std::pair<int, std::string>, std::string> users;
  try {
    ReaderCache files;
    read(m, dir, files);
    if (m.file(kUserFileName)) {
      Reader ur(io::join(dir, kUserFileName));
      for (const auto &e : ur.header().tensors) {
        // "<saving rank>/<key>": a rank of at most 9 digits (fits an int).
        const size_t slash = e.name.find('/');
        if (slash == std::string::npos || slash == 0 || slash > 9 || e.dtype != "U8" ||
            e.name.find_first_not_of("0123456789") != slash)
          throw Error(Status::Corrupt, ur.path() + ": unexpected entry \"" + e.name + "\"");
        std::string v(static_cast<size_t>(e.end - e.begin), '\0');
        ur.read_data(e.begin, v.data(), v.size());
        users[{std::atoi(e.name.substr(0, slash).c_str()), e.name.substr(slash + 1)}] = std::move(v);
      }
    }
  } catch (...) {
    err = std::current_exception();
  }
  comm::agree(b, err);
  loaded_user_ = std::move(users);
  loaded_world_ = m.world_size;
  return dir;
}

}  // namespace smp::ckpt
