// Collectives on CUDA buffers (ranks sharing one GPU: the staged backend)
// against the same collectives on host buffers, side by side in one run:
// allreduce and reduce-scatter, float32 sum, 64 KiB (where fixed per-call
// costs show: syncs, barriers, events) and 1 MiB..64 MiB. busbw as
// nccl-tests defines it (allreduce: 2(n-1)/n x bytes / time; reduce-scatter:
// (n-1)/n x bytes / time, bytes = the full input). Medians of --reps after a
// warm-up, the rows of one size measured in turns (medians_s); rank 0
// prints one JSON line per (collective, size). A third
// row per collective, memory "copies", times only what staging adds when
// nothing overlaps (so cuda - host - copies is what the pipeline hid, or
// lost to overheads): the input copied to pinned memory and the output
// back (for reduce-scatter, what its host-reducing path stages: the
// default below 8 MiB blocks).
// "chunk" is SMP_STAGED_CHUNK_BYTES, or "auto" (unset: the default).
// "path" is "ipc" when SMP_CUDA_IPC is unset, 1 or require (CUDA IPC segments for
// calls from SMP_IPC_MIN_BYTES, comm/ipc) and "staged" when it is 0; the
// copies rows are printed for the staged path only.
//   SMP_CUDA_IPC=0 mpirun -np 2 gpu_staged_bench [--reps R]
//   SMP_CUDA_IPC=require mpirun -np 2 gpu_staged_bench [--reps R]
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <smp/smp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "cuda_check.h"
#include "json_row.h"
#include "timing.h"

namespace {

// Medians of the slowest rank's time per call for each of `fs`, measured
// in turns (f0, f1, ..., f0, f1, ...) after one warm-up each, so that the
// machine's drift during the run (shared, noisy) hits every row alike and
// the ratios between rows hold.
std::vector<double> medians_s(int reps, const std::vector<std::function<void()>> &fs) {
  for (const auto &f : fs) f();
  std::vector<std::vector<double>> t(fs.size());
  for (int i = 0; i < reps; ++i)
    for (size_t j = 0; j < fs.size(); ++j) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double a = MPI_Wtime();
      fs[j]();
      double d = MPI_Wtime() - a, mx = 0;
      MPI_Allreduce(&d, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest rank's time
      t[j].push_back(mx);
    }
  std::vector<double> out;
  for (auto &v : t) out.push_back(smp::bench::median(std::move(v)));
  return out;
}

void must(smp_status_t s) {
  if (s != SMP_SUCCESS) {
    std::fprintf(stderr, "gpu_staged_bench: %s\n", smp_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

}  // namespace

int main(int argc, char **argv) {
  int reps = 10;
  if (argc == 3 && !std::strcmp(argv[1], "--reps")) reps = std::atoi(argv[2]);
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "gpu_staged_bench: no GPU\n");
    return 77;
  }
  must(smp_init(nullptr));
  int rank = 0, size = 1;
  smp_rank(SMP_WORLD, &rank);
  smp_size(SMP_WORLD, &size);
  cudaSetDevice(rank % ndev);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, rank % ndev);
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  const char *ipc_env = std::getenv("SMP_CUDA_IPC");
  const bool ipc = !(ipc_env && std::strcmp(ipc_env, "0") == 0);  // on unless 0 (device_env.h)
  for (size_t kib : {64, 1024, 2048, 4096, 16384, 65536}) {
    const size_t bytes = kib << 10, n = bytes / 4;
    const double mib = static_cast<double>(kib) / 1024;
    std::vector<float> hin(n, 1.0f), hout(n);
    float *din = nullptr, *dout = nullptr, *pinned = nullptr;
    cudaMallocHost(reinterpret_cast<void **>(&pinned), bytes);
    auto copies = [&](size_t in_bytes, size_t out_bytes) {
      CK(cudaMemcpyAsync(pinned, din, in_bytes, cudaMemcpyDeviceToHost, s));
      CK(cudaMemcpyAsync(dout, pinned, out_bytes, cudaMemcpyHostToDevice, s));
      CK(cudaStreamSynchronize(s));
    };
    cudaMalloc(reinterpret_cast<void **>(&din), bytes);
    cudaMalloc(reinterpret_cast<void **>(&dout), bytes);
    cudaMemcpy(din, hin.data(), bytes, cudaMemcpyHostToDevice);
    const double f_ar = 2.0 * (size - 1) / size, f_rs = 1.0 * (size - 1) / size;
    const size_t rc = n / static_cast<size_t>(size);
    struct Row { const char *coll, *mem; double factor; std::function<void()> f; double sec = 0; };
    std::vector<Row> rows = {
        {"allreduce", "host", f_ar, [&] { must(smp_allreduce(hin.data(), hout.data(), n, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr)); }},
        {"allreduce", "cuda", f_ar, [&] { must(smp_allreduce(din, dout, n, SMP_FLOAT32, SMP_SUM, SMP_WORLD, s)); cudaStreamSynchronize(s); }},
        {"reduce_scatter", "host", f_rs, [&] { must(smp_reduce_scatter(hin.data(), hout.data(), rc, SMP_FLOAT32, SMP_SUM, SMP_WORLD, nullptr)); }},
        {"reduce_scatter", "cuda", f_rs, [&] { must(smp_reduce_scatter(din, dout, rc, SMP_FLOAT32, SMP_SUM, SMP_WORLD, s)); cudaStreamSynchronize(s); }},
    };
    if (!ipc) {
      rows.push_back({"allreduce", "copies", f_ar, [&] { copies(bytes, bytes); }});
      rows.push_back({"reduce_scatter", "copies", f_rs, [&] { copies(bytes, rc * 4); }});
    }
    std::vector<std::function<void()>> fs;
    for (const Row &r : rows) fs.push_back(r.f);
    const std::vector<double> sec = medians_s(reps, fs);
    for (size_t j = 0; j < rows.size(); ++j) rows[j].sec = sec[j];
    const char *chunk = std::getenv(ipc ? "SMP_IPC_CHUNK_BYTES" : "SMP_STAGED_CHUNK_BYTES");
    if (rank == 0)
      for (const Row &r : rows)
        bench::print_row({{"bench", "staged"}, {"path", ipc ? "ipc" : "staged"}, {"device", prop.name}, {"ranks", size},
                          {"chunk", chunk && *chunk ? chunk : "auto"}, {"collective", r.coll}, {"memory", r.mem},
                          {"MiB", bench::general(mib)}, {"ms", bench::decimals(r.sec * 1e3, 3)},
                          {"busbw_GBps", bench::decimals(r.factor * rc * size * 4 / r.sec / 1e9, 3)}});
    cudaFreeHost(pinned);
    cudaFree(din);
    cudaFree(dout);
  }
  cudaStreamDestroy(s);
  smp_finalize();
  return 0;
}
