#include "ckpt/store.h"

#include <algorithm>
#include <cstdio>

#include "ckpt/fileio.h"
#include "ckpt/manifest.h"
#include "common/error.h"

namespace smp::ckpt::store {
namespace {

constexpr const char *kPrefix = "ckpt-";

// Parses "<prefix>NNNNNNNN" (exactly 8 digits) into seq.
bool parse_seq(const std::string &name, const std::string &prefix, uint64_t *seq) {
  if (name.size() != prefix.size() + 8 || name.compare(0, prefix.size(), prefix) != 0) return false;
  uint64_t v = 0;
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *seq = v;
  return true;
}

}  // namespace

std::string name_of(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%08llu", static_cast<unsigned long long>(seq));
  return buf;
}

std::string tmp_name_of(uint64_t seq) { return ".tmp-" + name_of(seq); }

std::vector<uint64_t> complete(const std::string &root) {
  std::vector<uint64_t> out;
  if (!io::is_dir(root)) return out;
  for (const auto &n : io::list_dir(root)) {
    uint64_t s;
    if (parse_seq(n, kPrefix, &s) && io::exists(io::join(io::join(root, n), kManifestName))) out.push_back(s);
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t next_seq(const std::string &root) {
  uint64_t next = 1;
  if (!io::is_dir(root)) return next;
  for (const auto &n : io::list_dir(root)) {
    uint64_t s;
    if (parse_seq(n, kPrefix, &s) || parse_seq(n, std::string(".tmp-") + kPrefix, &s) ||
        parse_seq(n, std::string(".del-") + kPrefix, &s))
      next = std::max(next, s + 1);
  }
  return next;
}

void clean_leftovers(const std::string &root) {
  if (!io::is_dir(root)) return;
  for (const auto &n : io::list_dir(root)) {
    uint64_t s;
    const bool tmp = parse_seq(n, std::string(".tmp-") + kPrefix, &s);
    const bool del = parse_seq(n, std::string(".del-") + kPrefix, &s);
    // A final name without a manifest is a leftover too (cannot arise from
    // our own protocol, but must never block a sequence number).
    const bool orphan = parse_seq(n, kPrefix, &s) && !io::exists(io::join(io::join(root, n), kManifestName));
    if (tmp || del || orphan || n == "latest.tmp") io::remove_tree(io::join(root, n));
  }
  // A save killed between its rename and the pointer update leaves
  // `latest` one behind: bring it to what a load would pick.
  const auto all = complete(root);
  const std::string latest = io::join(root, "latest");
  if (!all.empty()) {
    const std::string want = name_of(all.back()) + "\n";
    std::string have;
    try {
      have = io::read_small_file(latest, 64);
    } catch (const Error &) {  // missing or odd: rewritten below
    }
    try {
      if (have != want) io::write_file_atomic(latest, want);
    } catch (const Error &) {  // best effort: the next commit writes it, and fails the save if it cannot
    }
  }
}

std::string commit(const std::string &root, uint64_t seq) {
  const std::string tmp = io::join(root, tmp_name_of(seq));
  const std::string fin = io::join(root, name_of(seq));
  io::fsync_dir(tmp);
  io::rename_path(tmp, fin);
  try {
    io::fsync_dir(root);
    io::write_file_atomic(io::join(root, "latest"), name_of(seq) + "\n");
  } catch (...) {
    // The save fails (disk full writing `latest`, say): take the new
    // checkpoint back out of sight, or a load would pick it while `latest`
    // and every rank's error say the previous one is current.
    try {
      const std::string del = io::join(root, ".del-" + name_of(seq));
      io::rename_path(fin, del);
      io::fsync_dir(root);
      io::remove_tree(del);
    } catch (...) {  // the first error is the one to report
    }
    throw;
  }
  return fin;
}

void prune(const std::string &root, int keep) {
  if (keep <= 0) return;
  const auto all = complete(root);
  if (all.size() <= static_cast<size_t>(keep)) return;
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
    const std::string del = io::join(root, ".del-" + name_of(all[i]));
    io::rename_path(io::join(root, name_of(all[i])), del);
    io::fsync_dir(root);
    io::remove_tree(del);
  }
}

std::string resolve(const std::string &path) {
  if (io::exists(io::join(path, kManifestName))) return path;
  const auto all = complete(path);
  if (all.empty()) throw Error(Status::IO, path + ": no complete checkpoint here (no " + kManifestName +
                                               ", no ckpt-NNNNNNNN folder with one)");
  return io::join(path, name_of(all.back()));
}

}  // namespace smp::ckpt::store
