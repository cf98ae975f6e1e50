// smp-ckpt: look at, check and convert checkpoints without a job.
//
//   smp-ckpt info PATH            tensors, shapes, dtypes, layout, sizes
//   smp-ckpt verify PATH          every checkpoint under PATH (one folder,
//                                 a folder of them, or a .safetensors file):
//                                 checksums, headers, manifest vs files;
//                                 exit 1 if any fails
//   smp-ckpt consolidate SRC DST  any checkpoint -> DST/model.safetensors
//                                 (+ optimizer.safetensors), one tensor in
//                                 memory at a time
//
// Usage errors exit 2 with one line; failures exit 1.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/fileio.h"
#include "ckpt/manifest.h"
#include "ckpt/safetensors.h"
#include "ckpt/store.h"
#include "common/error.h"

using namespace smp;
using namespace smp::ckpt;

namespace {

// A one-line progress bar on stderr, drawn only on a terminal.
class Progress {
 public:
  Progress(const char *what, uint64_t total) : what_(what), total_(total ? total : 1), tty_(isatty(2)) {}
  ~Progress() {
    if (tty_ && shown_) std::fprintf(stderr, "\n");
  }
  void add(uint64_t n, const std::string &item) {
    done_ += n;
    if (!tty_) return;
    const int pct = static_cast<int>(100 * done_ / total_);
    char bar[31];
    for (int i = 0; i < 30; ++i) bar[i] = i < pct * 30 / 100 ? '#' : '.';
    bar[30] = '\0';
    std::fprintf(stderr, "\r%s [%s] %3d%% %-40.40s", what_, bar, pct, item.c_str());
    shown_ = true;
  }

 private:
  const char *what_;
  uint64_t total_, done_ = 0;
  bool tty_, shown_ = false;
};

std::string dims(const std::vector<uint64_t> &d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + "]";
}

bool is_file(const std::string &p) { return io::exists(p) && !io::is_dir(p); }

int info(const std::string &path) {
  if (is_file(path)) {
    Reader r(path);
    std::printf("%s: safetensors, %zu tensors, %llu data bytes\n", path.c_str(), r.header().tensors.size(),
                static_cast<unsigned long long>(r.header().data_size));
    for (const auto &t : r.header().tensors)
      std::printf("  %-40s %-5s %-20s %llu bytes\n", t.name.c_str(), t.dtype.c_str(), dims(t.shape).c_str(),
                  static_cast<unsigned long long>(t.end - t.begin));
    return 0;
  }
  const std::string dir = store::resolve(path);
  const Manifest m = read_manifest(dir, false);  // a look, not a check: files need not be there
  uint64_t bytes = 0;
  for (const auto &f : m.files) bytes += f.bytes;
  std::printf("%s: %s checkpoint, saved by %d ranks (%s), %zu files, %llu bytes\n", dir.c_str(), m.mode.c_str(),
              m.world_size, m.topology.c_str(), m.files.size(), static_cast<unsigned long long>(bytes));
  for (const auto &t : m.tensors)
    std::printf("  %-9s %-40s %-4s %-20s %zu piece%s\n", kind_name(t.kind), t.name.c_str(), dtype_name(t.dtype),
                dims(t.shape).c_str(), t.pieces.size(), t.pieces.size() == 1 ? "" : "s");
  return 0;
}

// Checks one checkpoint folder; prints and counts what fails. Each file is
// read once (checksum) and its header parsed once, for all its pieces:
// linear in files, tensors and pieces.
int verify_one(const std::string &dir) {
  int bad = 0;
  Manifest m;
  try {
    m = read_manifest(dir, false);
  } catch (const Error &e) {
    std::printf("FAIL %s: %s\n", dir.c_str(), e.what());
    return 1;
  }
  // The pieces each file must hold, by file.
  std::map<std::string, std::vector<std::pair<const TensorRecord *, const SourcePiece *>>> held;
  for (const auto &t : m.tensors)
    for (const auto &s : t.pieces) held[s.file].push_back({&t, &s});
  uint64_t total = 0;
  for (const auto &f : m.files) total += f.bytes;
  Progress bar("verify", total);
  for (const auto &f : m.files) {
    const std::string p = io::join(dir, f.name);
    try {
      verify_file(dir, f, [&](uint64_t n) { bar.add(n, f.name); });
      const bool st = f.name.size() > 12 && f.name.compare(f.name.size() - 12, 12, ".safetensors") == 0;
      if (!st) continue;
      const Reader r(p);
      const std::vector<std::string> recs = piece_records(r.header(), p);
      for (const auto &[t, s] : held[f.name]) {
        const TensorEntry *e = r.header().find(t->name);
        if (!e || e->smp_dtype != static_cast<int>(t->dtype) || e->shape != s->piece.local_shape() ||
            (!recs.empty() && recs[static_cast<size_t>(e - r.header().tensors.data())] != piece_record(s->piece)))
          throw Error(Status::Corrupt, p + " lacks " + t->name + " " + s->piece.describe() + " as the manifest has it");
      }
    } catch (const Error &e) {
      std::printf("FAIL %s\n", e.what());
      ++bad;
    }
  }
  // With every file's size confirmed, the pieces' claims are bounded by
  // real bytes: now prove they tile their tensors.
  if (!bad) {
    try {
      check_manifest_tiling(m, io::join(dir, kManifestName));
    } catch (const Error &e) {
      std::printf("FAIL %s\n", e.what());
      ++bad;
    }
  }
  if (!bad) std::printf("ok   %s (%s, %zu files, %zu tensors)\n", dir.c_str(), m.mode.c_str(), m.files.size(), m.tensors.size());
  return bad ? 1 : 0;
}

int verify(const std::string &path) {
  if (is_file(path)) {
    try {
      Reader r(path);
      std::printf("ok   %s (%zu tensors)\n", path.c_str(), r.header().tensors.size());
      return 0;
    } catch (const Error &e) {
      std::printf("FAIL %s\n", e.what());
      return 1;
    }
  }
  if (io::exists(io::join(path, kManifestName))) return verify_one(path);
  const auto seqs = store::complete(path);
  int bad = 0;
  for (const auto &n : io::list_dir(path))
    if (n.compare(0, 5, ".tmp-") == 0) std::printf("skip %s (partial: a save that did not finish)\n", n.c_str());
  for (uint64_t s : seqs) bad += verify_one(io::join(path, store::name_of(s)));
  if (seqs.empty()) {
    std::printf("FAIL %s: no complete checkpoint\n", path.c_str());
    return 1;
  }
  return bad ? 1 : 0;
}

int consolidate(const std::string &src, const std::string &dst) {
  const std::string dir = store::resolve(src);
  const Manifest m = read_manifest(dir);  // sizes checked, tiling proven
  for (const auto &f : m.files) verify_file(dir, f, nullptr);
  io::make_dirs(dst);
  ReaderCache files;
  for (Kind kind : {Kind::Model, Kind::Optimizer}) {
    std::vector<const TensorRecord *> ts;
    std::vector<TensorSpec> specs;
    uint64_t total = 0;
    for (const auto &t : m.tensors)
      if (t.kind == kind) {
        ts.push_back(&t);
        specs.push_back({t.name, t.dtype, t.shape});
        total += specs.back().bytes();
      }
    if (ts.empty()) continue;
    const std::string out = io::join(dst, std::string(kind_name(kind)) + ".safetensors");
    Writer w(out + ".tmp", specs, {{"format", "pt"}});
    Progress bar(kind_name(kind), total);
    for (const auto *t : ts) {
      // One whole tensor at a time, read through the resharding loader
      // from the manifest read once.
      std::vector<char> buf(static_cast<size_t>(TensorSpec{t->name, t->dtype, t->shape}.bytes()));
      Checkpoint c;
      c.add(t->name, kind, t->dtype, Piece::whole(t->shape, t->name), buf.data(), false);
      c.read(m, dir, files);
      w.append(buf.data(), buf.size());
      bar.add(buf.size(), t->name);
    }
    w.finish();
    io::rename_path(out + ".tmp", out);
    io::fsync_dir(dst);
    std::printf("wrote %s (%zu tensors)\n", out.c_str(), ts.size());
  }
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  const char *usage = "usage: smp-ckpt info PATH | verify PATH | consolidate SRC DST";
  CLI::App app{"Look at, check and convert checkpoints without a job. Exit status: 0 on success, 1 if a "
               "check or conversion fails, 2 for a usage error.",
               "smp-ckpt"};
  app.require_subcommand(1, 1);
  std::string path, src, dst;
  CLI::App *info_cmd = app.add_subcommand("info", "tensors, shapes, dtypes, layout, sizes");
  info_cmd->add_option("PATH", path, "a checkpoint folder, a folder of them, or a .safetensors file")->required();
  CLI::App *verify_cmd = app.add_subcommand(
      "verify", "checksums, headers, manifest vs files of every checkpoint under PATH; exit 1 if any fails");
  verify_cmd->add_option("PATH", path, "a checkpoint folder, a folder of them, or a .safetensors file")->required();
  CLI::App *consolidate_cmd = app.add_subcommand(
      "consolidate", "any checkpoint -> DST/model.safetensors (+ optimizer.safetensors), one tensor in memory at a time");
  consolidate_cmd->add_option("SRC", src, "a checkpoint folder, or a folder of them (its newest)")->required();
  consolidate_cmd->add_option("DST", dst, "the output folder")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    // One line, whatever CLI11 says: scripts read the first line of stderr.
    // CLI11 reports a word that is no command as a missing one: name it.
    std::string msg = e.what();
    const std::string first = argc > 1 ? argv[1] : "";
    const auto known = app.get_subcommands([&](const CLI::App *c) { return c->get_name() == first; });
    if (!first.empty() && first[0] != '-' && known.empty()) msg = "unknown command '" + first + "'";
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    std::fprintf(stderr, "smp-ckpt: %s; %s\n", msg.c_str(), usage);
    return 2;
  }
  try {
    if (info_cmd->parsed()) return info(path);
    if (verify_cmd->parsed()) return verify(path);
    return consolidate(src, dst);
  } catch (const Error &e) {
    std::fprintf(stderr, "smp-ckpt: %s\n", e.what());
    return 1;
  }
}
