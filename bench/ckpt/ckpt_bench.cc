// Checkpoint throughput on the ranks of one job (run with mpirun -np 4),
// against the disk's own sequential write bandwidth measured in the same
// run: `dd if=/dev/zero of=DIR/dd.bin bs=1M count=1024 conv=fsync` (saves
// fsync too). The model: GIB GiB of float32 in 16 equal tensors, laid out
// as pp=2 x tp=2 over 4 ranks (stages own half the tensors, tensor-parallel
// ranks a column slice each), so every byte has exactly one owner.
// Every number is the median of REPS repetitions; loads read from the page
// cache (the files were just written) unless the cache is dropped.
//
//   mpirun -np 4 build/bench/ckpt/ckpt-bench DIR [GIB=1] [REPS=3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli.h"
#include "smp/smp.h"
#include "timing.h"

namespace {

using smp::bench::median;
using smp::bench::now;

int me = 0, np = 1;

void ok(smp_status_t st, const char *what) {
  if (st != SMP_SUCCESS) {
    std::fprintf(stderr, "[rank %d] %s: %s\n", me, what, smp_last_error());
    std::exit(1);
  }
}

// Seconds of fn on the slowest rank (barrier before and after).
template <class F>
double timed(F fn) {
  ok(smp_barrier(SMP_WORLD), "barrier");
  const double t0 = now();
  fn();
  ok(smp_barrier(SMP_WORLD), "barrier");
  return now() - t0;
}

void remove_dir(const std::string &d) {
  if (me == 0) {
    const std::string cmd = "rm -rf '" + d + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "rm failed\n");
  }
  ok(smp_barrier(SMP_WORLD), "barrier");
}

}  // namespace

int main(int argc, char **argv) {
  ok(smp_init(nullptr), "smp_init");
  smp_rank(SMP_WORLD, &me);
  smp_size(SMP_WORLD, &np);
  std::string dir;
  double gib = 1.0;
  int reps = 3;
  CLI::App app{"ckpt-bench: checkpoint save/load throughput (mpirun -np 4)"};
  app.add_option("dir", dir, "where to write the checkpoints")->required();
  app.add_option("gib", gib, "GiB of tensors in all")->check(CLI::PositiveNumber);
  app.add_option("reps", reps, "timed repetitions (median)")->check(CLI::PositiveNumber);
  if (const int rc = smp::bench::parse(app, argc, argv); rc >= 0 || np != 4) {
    if (rc < 0 && me == 0) std::fprintf(stderr, "ckpt-bench: run it on 4 ranks (mpirun -np 4), not %d\n", np);
    smp_finalize();
    return rc < 0 ? 2 : rc;
  }
  const size_t kTensors = 16;
  const size_t total = static_cast<size_t>(gib * (1u << 30));
  const size_t rows = 4096, cols = total / 4 / kTensors / rows;  // float32 [rows, cols] each
  const size_t bytes = kTensors * rows * cols * 4;
  const int pp = me / 2, tp = me % 2;

  // This rank's pieces: its stage's tensors, its column half of each.
  std::vector<std::vector<float>> bufs;
  smp_ckpt_t ck;
  ok(smp_ckpt_create(&ck), "create");
  for (size_t t = 0; t < kTensors; ++t) {
    if (static_cast<int>(t * 2 / kTensors) != pp) continue;
    bufs.emplace_back(rows * cols / 2);
    auto &b = bufs.back();
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i + t * 131 + static_cast<size_t>(me)) % 1000);
    const size_t shape[2] = {rows, cols}, off[2] = {0, static_cast<size_t>(tp) * cols / 2}, ext[2] = {rows, cols / 2};
    const std::string name = "layers." + std::to_string(t) + ".weight";
    ok(smp_ckpt_add_tensor(ck, name.c_str(), SMP_FLOAT32, 2, shape, off, ext, b.data(), 0), "add");
  }

  // The disk bound, in the same run and folder.
  std::vector<double> dd;
  if (me == 0) {
    const std::string mk = "mkdir -p '" + dir + "'";
    if (std::system(mk.c_str()) != 0) return 1;
  }
  for (int r = 0; r < reps; ++r) {
    const double s = timed([&] {
      if (me != 0) return;
      const std::string cmd = "dd if=/dev/zero of='" + dir + "/dd.bin' bs=1M count=" +
                              std::to_string(bytes >> 20) + " conv=fsync status=none";
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "dd failed\n");
    });
    dd.push_back(s);
    if (me == 0) std::remove((dir + "/dd.bin").c_str());
  }

  struct Row {
    const char *what;
    std::vector<double> s;
  };
  std::vector<Row> out;
  for (smp_ckpt_mode_t mode : {SMP_CKPT_SHARDED, SMP_CKPT_CONSOLIDATED}) {
    const std::string root = dir + (mode == SMP_CKPT_SHARDED ? "/sharded" : "/consolidated");
    Row save{mode == SMP_CKPT_SHARDED ? "sharded save" : "consolidated save", {}};
    Row load{mode == SMP_CKPT_SHARDED ? "sharded load (verify)" : "consolidated load (verify)", {}};
    Row loadnv{mode == SMP_CKPT_SHARDED ? "sharded load (no verify)" : "consolidated load (no verify)", {}};
    for (int r = 0; r < reps; ++r) {
      remove_dir(root);
      save.s.push_back(timed([&] { ok(smp_ckpt_save(ck, root.c_str(), mode, 0), "save"); }));
      ok(smp_ckpt_set_options(ck, 0, 0, 1), "options");
      load.s.push_back(timed([&] { ok(smp_ckpt_load(ck, root.c_str()), "load"); }));
      ok(smp_ckpt_set_options(ck, 0, 0, 0), "options");
      loadnv.s.push_back(timed([&] { ok(smp_ckpt_load(ck, root.c_str()), "load"); }));
      ok(smp_ckpt_set_options(ck, 0, 0, 1), "options");
    }
    remove_dir(root);
    out.push_back(save);
    out.push_back(load);
    out.push_back(loadnv);
  }

  if (me == 0) {
    const double gb = static_cast<double>(bytes) / 1e9;
    const double disk = gb / median(dd);
    std::printf("model %.3f GB (%zu float32 tensors [%zu, %zu], pp=2 x tp=2 pieces), 4 ranks, median of %d\n", gb,
                kTensors, rows, cols, reps);
    std::printf("| operation | median s | GB/s | vs disk bound |\n|---|---|---|---|\n");
    std::printf("| dd conv=fsync (disk bound) | %.3f | %.2f | 100%% |\n", median(dd), disk);
    for (const auto &row : out)
      std::printf("| %s | %.3f | %.2f | %.0f%% |\n", row.what, median(row.s), gb / median(row.s),
                  100.0 * (gb / median(row.s)) / disk);
  }
  ok(smp_ckpt_destroy(ck), "destroy");
  smp_finalize();
  return 0;
}
