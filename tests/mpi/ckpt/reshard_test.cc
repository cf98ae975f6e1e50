// Checkpoints across layouts, under mpirun. Each argument is one action,
// run in order by every rank:
//   save:MODE:DIR:SIZE:PP:TP:PLACEMENT   MODE = consolidated | sharded |
//                                        consolidated-split (small buffers,
//                                        several files and writers)
//   load:DIR:SIZE:PP:TP:PLACEMENT        load the newest checkpoint in DIR
//                                        into that layout and check every
//                                        element and the user content
//   corrupt:DIR                          flip one data byte of the newest
//                                        checkpoint; every rank must see
//                                        Corrupt
//   mismatch                             ranks register inconsistent
//                                        shapes; every rank must see
//                                        InvalidArgument, none may hang
// A layout smaller than the job leaves the extra ranks without pieces
// (they still take part in the collectives), so one job tries several.
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "ckpt/fileio.h"
#include "ckpt/manifest.h"
#include "ckpt/store.h"
#include "comm/comm_bootstrap.h"
#include "comm/context.h"
#include "common/error.h"
#include "synthetic_model.h"

using namespace smp;
using namespace smp::ckpt;

namespace {

int g_failures = 0;
int g_rank = 0;

#define CHECK(cond, msg)                                                                       \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      ++g_failures;                                                                            \
      std::ostringstream os_;                                                                  \
      os_ << msg;                                                                              \
      std::fprintf(stderr, "[rank %d] %s:%d: %s\n", g_rank, __FILE__, __LINE__, os_.str().c_str()); \
    }                                                                                          \
  } while (0)

std::vector<std::string> fields(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string f;
  while (std::getline(ss, f, ':')) out.push_back(f);
  return out;
}

topo::Layout layout_of(const std::vector<std::string> &f, size_t i) {
  return topo::Layout(std::stoi(f[i]), std::stoi(f[i + 1]), std::stoi(f[i + 2]), topo::Placement::parse(f[i + 3]));
}

void register_all(Checkpoint &c, std::vector<ckpt_mpi::Held> &held) {
  for (auto &h : held)
    c.add(h.def.name, h.kind, h.dtype, Piece::box_range(h.def.shape, h.offset, h.extent, h.begin, h.count, h.def.name),
          h.data.data(), h.replicated);
}

Status status_of(comm::Bootstrap &ex, Checkpoint &c, const std::string &dir, std::string *msg) {
  try {
    c.load(ex, dir, {});
    return Status::Success;
  } catch (const Error &e) {
    *msg = e.what();
    return e.status();
  }
}

void save(comm::Bootstrap &ex, const std::vector<std::string> &f) {
  const topo::Layout L = layout_of(f, 3);
  auto held = ckpt_mpi::pieces_for(L, ex.rank());
  for (auto &h : held) h.fill();
  Checkpoint c;
  register_all(c, held);
  c.set_user("step", "4200");
  c.set_user("rng", "rng-state-of-rank-" + std::to_string(ex.rank()));
  SaveOptions opt;
  opt.sharded = f[1] == "sharded";
  if (f[1] == "consolidated-split") {
    opt.buffer_bytes = 4096;  // the minimum: several chunks for the larger tensors
    opt.max_file_bytes = 700;
  }
  opt.keep_last = 2;
  const std::string dir = c.save(ex, f[2], opt);
  if (ex.rank() == 0) std::printf("saved %s (%s, layout %s)\n", dir.c_str(), f[1].c_str(), f[3].c_str());
}

void load(comm::Bootstrap &ex, const std::vector<std::string> &f) {
  const topo::Layout L = layout_of(f, 2);
  auto held = ckpt_mpi::pieces_for(L, ex.rank());
  for (auto &h : held) h.data.assign(h.count * dtype_size(h.dtype), 0x5a);  // poison
  Checkpoint c;
  register_all(c, held);
  const std::string dir = c.load(ex, f[1], {});
  size_t elems = 0;
  for (const auto &h : held) {
    const size_t bad = h.mismatches();
    elems += h.count;
    CHECK(bad == 0, dir << " into layout " << f[2] << ":" << f[3] << ":" << f[4] << ":" << f[5] << ": "
                        << kind_name(h.kind) << " " << h.def.name << ": " << bad << " of " << h.count
                        << " elements wrong");
  }
  std::string v;
  CHECK(c.user("step", 0, &v) && v == "4200", "step user content: '" << v << "'");
  const int saved = c.loaded_world_size();
  const int from = ex.rank() % saved;
  CHECK(c.user("rng", from, &v) && v == "rng-state-of-rank-" + std::to_string(from), "rng of rank " << from << ": '" << v << "'");
  if (ex.rank() == 0) std::printf("loaded %s into layout %s:%s:%s:%s\n", dir.c_str(), f[2].c_str(), f[3].c_str(), f[4].c_str(), f[5].c_str());
}

void corrupt(comm::Bootstrap &ex, const std::vector<std::string> &f) {
  const std::string dir = store::resolve(f[1]);
  if (ex.rank() == 0) {
    // The largest data file, one byte near its end (tensor data, not header).
    const Manifest m = manifest_from_json(io::read_small_file(io::join(dir, kManifestName), 1 << 30), "manifest");
    const FileRecord *victim = &m.files[0];
    for (const auto &r : m.files)
      if (r.bytes > victim->bytes) victim = &r;
    FILE *fp = std::fopen(io::join(dir, victim->name).c_str(), "r+b");
    std::fseek(fp, static_cast<long>(victim->bytes - 2), SEEK_SET);
    const int ch = std::fgetc(fp);
    std::fseek(fp, static_cast<long>(victim->bytes - 2), SEEK_SET);
    std::fputc(ch ^ 0x01, fp);
    std::fclose(fp);
  }
  ex.barrier();
  auto held = ckpt_mpi::pieces_for(topo::Layout(ex.size(), 1, 1), ex.rank());
  for (auto &h : held) h.data.assign(h.count * dtype_size(h.dtype), 0);
  Checkpoint c;
  register_all(c, held);
  std::string msg;
  const Status st = status_of(ex, c, dir, &msg);
  CHECK(st == Status::Corrupt, "corrupted checkpoint: status " << static_cast<int>(st) << " " << msg);
  CHECK(msg.find("CRC32C") != std::string::npos, "message names the checksum: " << msg);
}

void mismatch(comm::Bootstrap &ex, const std::string &dir) {
  // The last rank believes the tensor is bigger: every rank must fail alike.
  const uint64_t n = ex.rank() == ex.size() - 1 ? 9 : 8;
  std::vector<float> buf(n, 1.0f);
  Checkpoint c;
  c.add("w", Kind::Model, DType::F32, Piece::whole({n}, "w"), buf.data(), true);
  try {
    c.save(ex, dir, {});
    CHECK(ex.size() == 1, "inconsistent registrations were saved");
  } catch (const Error &e) {
    CHECK(e.status() == Status::InvalidArgument, "status " << static_cast<int>(e.status()) << ": " << e.what());
  }
}

}  // namespace

int main(int argc, char **argv) {
  comm::Context &ctx = comm::Context::init();
  g_rank = ctx.world_rank();
  comm::CommBootstrap ex(ctx.group(topo::Group::World), &ctx.layout());
  for (int i = 1; i < argc; ++i) {
    const auto f = fields(argv[i]);
    try {
      if (f[0] == "save" && f.size() == 7) save(ex, f);
      else if (f[0] == "load" && f.size() == 6) load(ex, f);
      else if (f[0] == "corrupt" && f.size() == 2) corrupt(ex, f);
      else if (f[0] == "mismatch" && f.size() == 2) mismatch(ex, f[1]);
      else CHECK(false, "bad action " << argv[i]);
    } catch (const std::exception &e) {
      CHECK(false, argv[i] << ": " << e.what());
    }
  }
  // The job's verdict on every rank.
  int64_t local = g_failures, total = 0;
  ctx.group(topo::Group::World).allreduce(&local, &total, 1, DType::I64, comm::ReduceOp::Sum);
  comm::Context::finalize();
  return total == 0 ? 0 : 1;
}
