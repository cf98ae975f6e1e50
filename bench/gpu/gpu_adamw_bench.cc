// Fused AdamW on one device shard (float32 master, moments and gradients:
// 28 bytes moved per element) against the HBM bound measured in the same
// run: a device-to-device copy, counted as bytes read plus bytes written
// like the kernel. Medians of --reps timed repetitions (CUDA events) after
// a warm-up. Prints one JSON line (bench/gpu/gpu_table.py reads it).
//   gpu_adamw_bench [--elements N] [--reps R]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "optim/cuda/optim_kernels.h"
#include "cuda_check.h"
#include "json_row.h"

namespace {

template <class F>
double median_ms(int reps, F &&f) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  f();  // warm-up
  CK(cudaDeviceSynchronize());
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a));
    f();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void fill(float *p, size_t n, float v) {
  std::vector<float> h(1 << 20, v);
  for (size_t off = 0; off < n; off += h.size())
    CK(cudaMemcpy(p + off, h.data(), std::min(h.size(), n - off) * 4, cudaMemcpyHostToDevice));
}

}  // namespace

int main(int argc, char **argv) {
  size_t n = 250000000;
  int reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--elements")) n = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: gpu_adamw_bench [--elements N] [--reps R]\n");
      return 2;
    }
  }
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "gpu_adamw_bench: no GPU\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  float *p, *m, *v, *g;
  CK(cudaMalloc(reinterpret_cast<void **>(&p), n * 4));
  CK(cudaMalloc(reinterpret_cast<void **>(&m), n * 4));
  CK(cudaMalloc(reinterpret_cast<void **>(&v), n * 4));
  CK(cudaMalloc(reinterpret_cast<void **>(&g), n * 4));
  fill(p, n, 0.5f);
  fill(m, n, 0.0f);
  fill(v, n, 0.0f);
  fill(g, n, 1e-3f);

  // Copy bandwidth: p -> v and m -> g, 8 bytes read and 8 written per
  // element, the same access pattern as the kernel's streams.
  const size_t half_bytes = 2 * n * 4;  // bytes read (= bytes written)
  const double copy_ms = median_ms(reps, [&] {
    CK(cudaMemcpyAsync(v, p, n * 4, cudaMemcpyDeviceToDevice));
    CK(cudaMemcpyAsync(g, m, n * 4, cudaMemcpyDeviceToDevice));
  });
  const double copy_gbs = 2.0 * half_bytes / (copy_ms * 1e-3) / 1e9;  // read + write
  fill(v, n, 0.0f);
  fill(g, n, 1e-3f);

  int64_t step = 1;
  const double adamw_ms = median_ms(reps, [&] {
    smp::cuda::adamw_update(p, m, v, g, nullptr, smp::DType::F32, n,
                            smp::cuda::adamw_coef(1e-4, 0.9, 0.999, 1e-8, 0.01, step++, 1.0f), nullptr);
  });
  CK(cudaGetLastError());
  const double bytes = 28.0 * static_cast<double>(n);
  const double bound_ms = bytes / (copy_gbs * 1e9) * 1e3;
  bench::print_row({{"bench", "adamw"}, {"impl", "smp"}, {"device", prop.name}, {"elements", n},
                    {"copy_GBps", bench::decimals(copy_gbs, 1)}, {"bound_ms", bench::decimals(bound_ms, 3)},
                    {"ms", bench::decimals(adamw_ms, 3)}, {"fraction_of_bound", bench::decimals(bound_ms / adamw_ms, 3)}});
  cudaFree(p);
  cudaFree(m);
  cudaFree(v);
  cudaFree(g);
  return 0;
}
