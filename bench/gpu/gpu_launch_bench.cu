// What one step of a staged collective costs when ranks share one GPU:
// a step is one operation enqueued on a non-blocking stream and waited for
// (cudaStreamSynchronize; the event kind: cudaEventSynchronize), timed with
// MPI_Wtime. The question it answers: do kernels of two processes on one
// GPU (no MPS) pay a context switch that copies, which run on the copy
// engines, do not? So each step kind (an empty kernel, a 256 KiB add on
// device memory and with one input read from pinned host memory, 256 KiB
// D2H, H2D and D2D copies, an event record) runs in three modes:
//   together         a barrier, then every rank runs the step;
//   alone            a barrier, then rank 0 only (the others' contexts idle);
//   batch8 together  every rank enqueues 8 steps back to back and syncs once,
//                    reported per step: throughput, where together is latency.
// A kernel that is slow together and fast alone (copies fast in both) is
// the time-slice cost. Each (kind, mode): the median over --reps (200) of
// the slowest rank's time, after 20 warm-ups; rank 0 prints one JSON line
// (bench/gpu/gpu_table.py reads them). Exits 77 when no GPU is visible.
//   mpirun -np 2 gpu_launch_bench [--reps R]
#include <cuda_runtime_api.h>
#include <mpi.h>

#include <algorithm>
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

constexpr int kWarmups = 20;
constexpr int kBatch = 8;
constexpr int kElements = 64 << 10;  // float32: 256 KiB
constexpr size_t kBytes = kElements * sizeof(float);

// Writes one int so that the launch is not a no-op the driver could skip.
__global__ void empty_kernel(int *flag) {
  if (threadIdx.x == 0) *flag = 1;
}

__global__ void add_kernel(const float *a, const float *b, float *out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = a[i] + b[i];
}

// The median over reps of the slowest rank's time for one rep: a barrier,
// then run() on the ranks where it is set (the others go straight to the
// reduction, which waits for the slowest), as gpu_staged_bench.cc times.
template <class F>
double median_s(int reps, bool run, F &&f) {
  std::vector<double> t;
  for (int i = 0; i < kWarmups + reps; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double a = MPI_Wtime();
    if (run) f();
    double d = MPI_Wtime() - a, mx = 0;
    MPI_Allreduce(&d, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (i >= kWarmups) t.push_back(mx);
  }
  return smp::bench::median(std::move(t));
}

struct Step {
  const char *name;
  std::function<void()> enqueue;
  bool event_sync;  // wait with cudaEventSynchronize instead of the stream
};

}  // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int reps = 200;
  if (argc == 3 && !std::strcmp(argv[1], "--reps")) reps = std::max(1, std::atoi(argv[2]));
  // Every rank agrees before any leaves: none waits in a barrier for one
  // that returned.
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess) ndev = 0;
  int min_dev = 0;
  MPI_Allreduce(&ndev, &min_dev, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (min_dev == 0) {
    if (rank == 0) std::fprintf(stderr, "gpu_launch_bench: no GPU\n");
    MPI_Finalize();
    return 77;
  }
  CK(cudaSetDevice(rank % ndev));
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, rank % ndev));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaEvent_t ev;
  CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));

  int *flag = nullptr;
  float *a = nullptr, *b = nullptr, *out = nullptr, *pinned = nullptr, *pinned_dev = nullptr;
  CK(cudaMalloc(reinterpret_cast<void **>(&flag), sizeof(int)));
  CK(cudaMalloc(reinterpret_cast<void **>(&a), kBytes));
  CK(cudaMalloc(reinterpret_cast<void **>(&b), kBytes));
  CK(cudaMalloc(reinterpret_cast<void **>(&out), kBytes));
  CK(cudaMallocHost(reinterpret_cast<void **>(&pinned), kBytes));
  // The kernel reads the pinned buffer over the bus, as the staged
  // reduce-scatter's kernel reads the peers' blocks: the same address under
  // unified addressing, asked for rather than assumed (and assumed where
  // asking fails: one failed call must not cost the run the other rows).
  if (cudaHostGetDevicePointer(reinterpret_cast<void **>(&pinned_dev), pinned, 0) != cudaSuccess) {
    (void)cudaGetLastError();
    pinned_dev = pinned;
  }
  std::vector<float> init(kElements, 1.0f);
  std::memcpy(pinned, init.data(), kBytes);
  CK(cudaMemcpy(a, init.data(), kBytes, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(b, init.data(), kBytes, cudaMemcpyHostToDevice));

  const int threads = 256, blocks = (kElements + threads - 1) / threads;
  const std::vector<Step> steps = {
      {"empty kernel",
       [&] {
         empty_kernel<<<1, 32, 0, s>>>(flag);
         CK(cudaGetLastError());
       },
       false},
      {"add kernel, device memory, 256 KiB",
       [&] {
         add_kernel<<<blocks, threads, 0, s>>>(a, b, out, kElements);
         CK(cudaGetLastError());
       },
       false},
      {"add kernel, one input in pinned host memory, 256 KiB",
       [&] {
         add_kernel<<<blocks, threads, 0, s>>>(a, pinned_dev, out, kElements);
         CK(cudaGetLastError());
       },
       false},
      {"D2H copy 256 KiB", [&] { CK(cudaMemcpyAsync(pinned, a, kBytes, cudaMemcpyDeviceToHost, s)); }, false},
      {"H2D copy 256 KiB", [&] { CK(cudaMemcpyAsync(out, pinned, kBytes, cudaMemcpyHostToDevice, s)); }, false},
      {"D2D copy 256 KiB", [&] { CK(cudaMemcpyAsync(out, a, kBytes, cudaMemcpyDeviceToDevice, s)); }, false},
      {"event record + sync", [&] { CK(cudaEventRecord(ev, s)); }, true},
  };
  struct Mode { const char *name; bool rank0_only; int batch; };
  const Mode modes[] = {{"alone", true, 1}, {"together", false, 1}, {"batch8 together", false, kBatch}};
  for (const Step &st : steps)
    for (const Mode &m : modes) {
      const double sec = median_s(reps, !m.rank0_only || rank == 0, [&] {
        for (int k = 0; k < m.batch; ++k) st.enqueue();
        if (st.event_sync) {
          CK(cudaEventSynchronize(ev));
        } else {
          CK(cudaStreamSynchronize(s));
        }
      });
      // Flushed line by line: rows printed before a timeout still count.
      if (rank == 0)
        bench::print_row({{"bench", "launch"}, {"device", prop.name}, {"ranks", size}, {"step", st.name},
                          {"mode", m.name}, {"us", bench::decimals(sec * 1e6 / m.batch, 2)}});
    }

  CK(cudaDeviceSynchronize());
  cudaFreeHost(pinned);
  cudaFree(flag);
  cudaFree(a);
  cudaFree(b);
  cudaFree(out);
  cudaEventDestroy(ev);
  cudaStreamDestroy(s);
  MPI_Finalize();
  return 0;
}
