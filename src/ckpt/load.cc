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

constexpr uint64_t kMaxManifestBytes = uint64_t{1} << 30;
// Reads of nearby slices are merged when the bytes skipped are at most
// kMaxGap, into a bounce buffer of at most kMaxSpan: many small preads
// (a column slice of a row-major matrix) cost more than reading the gaps.
constexpr uint64_t kMaxGap = 64 << 10;
constexpr uint64_t kMaxSpan = 8 << 20;

void verify_file(const std::string &dir, const FileRecord &rec) {
  const std::string path = io::join(dir, rec.name);
  const int fd = io::open_read(path);
  std::vector<char> buf(size_t{8} << 20);
  uint32_t crc = 0;
  uint64_t size = 0;
  try {
    size = io::file_size(fd, path);
    if (size != rec.bytes)
      throw Error(Status::Corrupt, path + ": " + std::to_string(size) + " bytes, the manifest says " +
                                       std::to_string(rec.bytes));
    for (uint64_t off = 0; off < size;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      io::pread_all(fd, buf.data(), n, off, path);
      crc = crc32c_update(crc, buf.data(), n);
      off += n;
    }
  } catch (...) {
    io::close_fd(fd, path);
    throw;
  }
  io::close_fd(fd, path);
  if (crc != rec.crc32c)
    throw Error(Status::Corrupt, path + ": CRC32C " + std::to_string(crc) + " does not match the manifest's " +
                                     std::to_string(rec.crc32c));
}

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

void Checkpoint::load_piece(const Reg &reg, const Manifest &m, const std::string &dir,
                            std::map<std::string, std::unique_ptr<Reader>> &readers) const {
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
    auto &rd = readers[src.file];
    if (!rd) rd = std::make_unique<Reader>(io::join(dir, src.file));
    const TensorEntry *e = rd->header().find(d.name);
    if (!e || e->smp_dtype != static_cast<int>(d.dtype) || e->shape != src.piece.local_shape())
      throw Error(Status::Corrupt, rd->path() + ": " + what + " is missing or does not match the manifest");
    read_overlaps(*rd, e->begin, ovs, es, static_cast<char *>(reg.data));
    for (const auto &o : ovs) got += o.len;
  }
  if (got != d.piece.numel())
    throw Error(Status::Corrupt, dir + ": " + what + " " + d.piece.describe() + ": the checkpoint supplies " +
                                     std::to_string(got) + " of its " + std::to_string(d.piece.numel()) + " elements");
}

std::string Checkpoint::load(Exchange &ex, const std::string &path, const LoadOptions &opt) {
  if (path.empty()) invalid("checkpoint path is empty");
  const int me = ex.rank(), nranks = ex.size();
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
  agree(ex, err);
  dir = broadcast_string(ex, dir, 0);

  Manifest m;
  try {
    const std::string mpath = io::join(dir, kManifestName);
    m = manifest_from_json(io::read_small_file(mpath, kMaxManifestBytes), mpath);
  } catch (...) {
    err = std::current_exception();
  }
  agree(ex, err);

  if (opt.verify) {
    try {
      for (size_t i = static_cast<size_t>(me); i < m.files.size(); i += static_cast<size_t>(nranks))
        verify_file(dir, m.files[i]);
    } catch (...) {
      err = std::current_exception();
    }
    agree(ex, err);
  }

  std::map<std::pair<int, std::string>, std::string> users;
  try {
    std::map<std::string, std::unique_ptr<Reader>> readers;
    for (const auto &r : regs_) load_piece(r, m, dir, readers);
    if (m.file(kUserFileName)) {
      Reader ur(io::join(dir, kUserFileName));
      for (const auto &e : ur.header().tensors) {
        const size_t slash = e.name.find('/');
        if (slash == std::string::npos || slash == 0 || e.dtype != "U8" ||
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
  agree(ex, err);
  loaded_user_ = std::move(users);
  loaded_world_ = m.world_size;
  return dir;
}

}  // namespace smp::ckpt
