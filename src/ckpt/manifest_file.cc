// read_manifest: the one way load, verify, consolidate and info take a
// checkpoint's index, so that all of them hold a manifest to the same
// proof before trusting it.
#include <algorithm>
#include <vector>

#include "ckpt/crc32c.h"
#include "ckpt/fileio.h"
#include "ckpt/manifest.h"
#include "common/error.h"

namespace smp::ckpt {

Manifest read_manifest(const std::string &dir, bool check_files) {
  const std::string path = io::join(dir, kManifestName);
  Manifest m = manifest_from_json(io::read_small_file(path, kMaxManifestBytes), path);
  if (!check_files) return m;
  // Real sizes before the tiling proof: its work grows with the elements
  // the pieces claim, which parsing bounded by the recorded sizes; the
  // files on disk now bound those (a forged manifest cannot make it slow).
  for (const auto &f : m.files) {
    const std::string p = io::join(dir, f.name);
    if (!io::exists(p))
      throw Error(Status::Corrupt, p + ": listed in " + path + " but missing (the checkpoint is incomplete)");
    const uint64_t size = io::regular_file_size(p);
    if (size != f.bytes)
      throw Error(Status::Corrupt, p + ": " + std::to_string(size) + " bytes, the manifest (" + path + ") says " +
                                       std::to_string(f.bytes));
  }
  check_manifest_tiling(m, path);
  return m;
}

std::string piece_record(const Piece &p) {
  std::string s;
  for (const auto *dims : {&p.offset(), &p.extent()}) {
    for (size_t i = 0; i < dims->size(); ++i) s += (i ? "," : "") + std::to_string((*dims)[i]);
    s += '/';
  }
  return s + std::to_string(p.range_begin()) + "," + std::to_string(p.numel());
}

std::vector<std::string> piece_records(const Header &h, const std::string &what) {
  std::vector<std::string> out;
  for (const auto &[k, v] : h.metadata) {
    if (k != kPiecesKey) continue;
    size_t pos = 0;
    while (pos < v.size()) {
      const size_t end = v.find(';', pos);
      if (end == std::string::npos) break;
      out.push_back(v.substr(pos, end - pos));
      pos = end + 1;
    }
    if (pos != v.size() || out.size() != h.tensors.size())
      throw Error(Status::Corrupt, what + ": its \"" + kPiecesKey + "\" record does not list its " +
                                       std::to_string(h.tensors.size()) + " tensors");
  }
  return out;
}

void verify_file(const std::string &dir, const FileRecord &rec, const std::function<void(uint64_t)> &progress) {
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
      if (progress) progress(n);
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

}  // namespace smp::ckpt
