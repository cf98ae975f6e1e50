// Consolidated save: pieces gathered (gatherv) to each file's writer rank,
// chunk by chunk, and streamed into whole tensors.
#include <algorithm>
#include <cstring>
#include <memory>

#include "ckpt/checkpoint.h"
#include "ckpt/fileio.h"
#include "ckpt/safetensors.h"
#include "ckpt/write_queue.h"
#include "common/error.h"

namespace smp::ckpt {
namespace {

struct Chunk {
  size_t file, tensor;
  uint64_t from, to;  // elements of the tensor, row-major
};

// Files' chunks dealt round robin, so that consecutive chunks usually
// belong to different writers and their disks work at the same time.
std::vector<Chunk> chunk_order(const std::vector<GlobalTensor> &table, const std::vector<FilePlan> &files,
                               uint64_t buffer_bytes) {
  std::vector<std::vector<Chunk>> per_file(files.size());
  for (size_t f = 0; f < files.size(); ++f)
    for (size_t t : files[f].tensors) {
      const uint64_t n = table[t].bytes() / dtype_size(table[t].dtype);
      const uint64_t step = std::max<uint64_t>(1, buffer_bytes / dtype_size(table[t].dtype));
      for (uint64_t c = 0; c < n; c += step) per_file[f].push_back({f, t, c, std::min(n, c + step)});
    }
  std::vector<Chunk> out;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const auto &pf : per_file)
      if (i < pf.size()) {
        out.push_back(pf[i]);
        any = true;
      }
    if (!any) return out;
  }
}

}  // namespace

std::exception_ptr Checkpoint::gather_and_write(comm::Bootstrap &b, const std::vector<GlobalTensor> &table,
                                                const std::vector<FilePlan> &files, const std::string &dir,
                                                const SaveOptions &opt, std::vector<FileRecord> *written) const {
  const int me = b.rank(), nranks = b.size();
  std::exception_ptr err;
  // My files, opened up front (the header needs every tensor's shape only).
  std::vector<std::unique_ptr<Writer>> writers(files.size());
  try {
    for (size_t f = 0; f < files.size(); ++f) {
      if (files[f].writer != me) continue;
      std::vector<TensorSpec> specs;
      for (size_t t : files[f].tensors) specs.push_back({table[t].name, table[t].dtype, table[t].shape});
      writers[f] = std::make_unique<Writer>(io::join(dir, files[f].name), specs,
                                            std::vector<std::pair<std::string, std::string>>{{"format", "pt"}});
    }
  } catch (...) {
    err = std::current_exception();
  }
  WriteQueue queue(2);
  std::vector<char> send, recv;
  std::vector<size_t> counts(static_cast<size_t>(nranks));
  std::vector<std::vector<Run>> runs(static_cast<size_t>(nranks));

  for (const Chunk &c : chunk_order(table, files, opt.buffer_bytes)) {
    const GlobalTensor &t = table[c.tensor];
    const size_t es = dtype_size(t.dtype);
    const int root = files[c.file].writer;
    const Reg *local = nullptr;
    for (const auto &o : t.owners)
      if (o.rank == me) local = find(t.kind, t.name);
    // Every rank computes every owner's runs in this chunk: the root to
    // place what it receives, the others to agree on the counts.
    std::fill(counts.begin(), counts.end(), 0);
    bool remote = false;
    for (auto &r : runs) r.clear();
    for (const auto &o : t.owners) {
      runs[static_cast<size_t>(o.rank)] = o.piece.runs_in(c.from, c.to);
      uint64_t n = 0;
      for (const auto &r : runs[static_cast<size_t>(o.rank)]) n += r.len;
      if (o.rank != root) counts[static_cast<size_t>(o.rank)] = static_cast<size_t>(n * es);
      remote = remote || (o.rank != root && n > 0);
    }
    const auto &myruns = runs[static_cast<size_t>(me)];
    const char *mydata = local ? static_cast<const char *>(local->data) : nullptr;

    if (remote) {
      // Pack my runs of the chunk in global order; the root sends nothing.
      send.resize(me == root ? 0 : counts[static_cast<size_t>(me)]);
      size_t pos = 0;
      for (const auto &r : myruns) {
        if (me == root) break;
        std::memcpy(send.data() + pos, mydata + r.local * es, r.len * es);
        pos += r.len * es;
      }
      size_t total = 0;
      for (size_t n : counts) total += n;
      if (me == root) recv.resize(total);
      char dummy = 0;
      b.gatherv(send.empty() ? &dummy : send.data(), send.size(), me == root && total ? recv.data() : &dummy,
                counts.data(), root);
    }
    if (me != root || err) continue;

    const size_t bytes = static_cast<size_t>((c.to - c.from) * es);
    // Zero copy when the root's own memory holds the whole chunk in order.
    if (!remote && myruns.size() == 1 && myruns[0].len == c.to - c.from) {
      queue.push_view(writers[c.file].get(), mydata + myruns[0].local * es, bytes);
      continue;
    }
    std::vector<char> buf = queue.recycled();
    buf.resize(bytes);
    size_t pos = 0;
    for (int r = 0; r < nranks; ++r)
      for (const auto &run : runs[static_cast<size_t>(r)]) {
        char *dst = buf.data() + (run.global - c.from) * es;
        if (r == me) {
          std::memcpy(dst, mydata + run.local * es, run.len * es);
        } else {
          std::memcpy(dst, recv.data() + pos, run.len * es);
          pos += run.len * es;
        }
      }
    queue.push(writers[c.file].get(), std::move(buf));
  }

  try {
    queue.finish();
  } catch (...) {
    if (!err) err = std::current_exception();
  }
  if (!err) {
    try {
      for (size_t f = 0; f < files.size(); ++f)
        if (writers[f]) {
          const FileDigest d = writers[f]->finish();
          written->push_back({files[f].name, d.size, d.crc32c});
        }
    } catch (...) {
      err = std::current_exception();
    }
  }
  return err;
}

}  // namespace smp::ckpt
