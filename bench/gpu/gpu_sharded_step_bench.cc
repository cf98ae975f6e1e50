// The sharded optimizer's whole step on CUDA memory (pack the gradients,
// reduce-scatter, [norm + read-back], fused AdamW, allgather, copy out)
// against its fused kernel alone over the same elements, in the same run:
// what the step costs beyond the kernel. One rank (NCCL); a model of
// --tensors equal tensors, --elements in all, in --dtype (f32 or bf16: the
// model copy and gradients; master and moments are float32). Wall-clock
// medians of --reps steps, each followed by a device synchronize, after a
// warm-up. One JSON line per configuration (bench/gpu/gpu_table.py).
//   mpirun -np 1 gpu_sharded_step_bench [--elements N] [--tensors T] [--dtype f32|bf16] [--reps R]
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "comm/context.h"
#include "optim/kernels.h"
#include "optim/sharded_optimizer.h"
#include "cuda_check.h"
#include "json_row.h"

namespace {

template <class F>
double median_ms(int reps, F &&f) {
  f();  // warm-up
  CK(cudaDeviceSynchronize());
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    CK(cudaDeviceSynchronize());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void *device_zeros(size_t bytes) {
  void *p = nullptr;
  CK(cudaMalloc(&p, bytes));
  CK(cudaMemset(p, 0, bytes));
  return p;
}

}  // namespace

int main(int argc, char **argv) {
  size_t n = 100000000, tensors = 48;
  int reps = 20;
  smp::DType dtype = smp::DType::F32;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--elements") n = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--tensors") tensors = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--reps") reps = std::atoi(v.c_str());
    else if (a == "--dtype" && (v == "f32" || v == "bf16")) dtype = v == "f32" ? smp::DType::F32 : smp::DType::BF16;
    else {
      std::fprintf(stderr, "usage: gpu_sharded_step_bench [--elements N] [--tensors T] [--dtype f32|bf16] [--reps R]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || n == 0 || tensors == 0 || reps < 1) {
    std::fprintf(stderr, "usage: gpu_sharded_step_bench [--elements N] [--tensors T] [--dtype f32|bf16] [--reps R]\n");
    return 2;
  }
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::fprintf(stderr, "gpu_sharded_step_bench: no GPU\n");
    return 77;
  }
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties(&prop, 0));
  smp::comm::Context &ctx = smp::comm::Context::init();
  smp::comm::Communicator &world = ctx.group(smp::topo::Group::World);
  const size_t es = smp::dtype_size(dtype);
  const size_t per = (n + tensors - 1) / tensors;

  std::vector<void *> params, grads;
  std::vector<smp::optim::TensorBinding> bindings;
  size_t total = 0;
  for (size_t t = 0; t < tensors && total < n; ++t) {
    const size_t c = std::min(per, n - total);
    total += c;
    params.push_back(device_zeros(c * es));
    grads.push_back(device_zeros(c * es));
    bindings.push_back({{"t" + std::to_string(t), c, dtype}, params.back(), grads.back(), true});
  }

  const char *dname = dtype == smp::DType::F32 ? "f32" : "bf16";
  for (int clip = 0; clip < 2; ++clip) {
    smp::optim::OptimizerConfig cfg;
    cfg.max_grad_norm = clip ? 1.0 : 0.0;
    cfg.check_finite = clip != 0;
    smp::optim::ShardedOptimizer opt(world, {}, bindings, cfg);
    const double step_ms = median_ms(reps, [&] { opt.step(); });

    // The kernel alone on a shard of the same size (the step's own kernel
    // reads the reduced gradients and writes the model copy, as here).
    const size_t shard = opt.layout().shard_elems();
    auto *st = static_cast<float *>(device_zeros(3 * shard * sizeof(float)));
    void *g = device_zeros(shard * es), *out = device_zeros(shard * es);
    smp::optim::AdamWHyper h = cfg.adamw;
    const double kernel_ms = median_ms(reps, [&] {
      ++h.step;
      smp::optim::device::adamw_update(st, st + shard, st + 2 * shard, g, out, dtype, shard, 1.0f, h,
                                       nullptr);
    });
    CK(cudaFree(st));
    CK(cudaFree(g));
    CK(cudaFree(out));
    bench::print_row({{"bench", "sharded_step"}, {"device", prop.name}, {"ranks", world.size()}, {"elements", total},
                      {"tensors", bindings.size()}, {"dtype", dname}, {"clip", clip},
                      {"step_ms", bench::decimals(step_ms, 3)}, {"kernel_ms", bench::decimals(kernel_ms, 3)},
                      {"step_over_kernel", bench::decimals(step_ms / kernel_ms, 2)}});
  }
  for (void *p : params) cudaFree(p);
  for (void *p : grads) cudaFree(p);
  smp::comm::Context::finalize();
  return 0;
}
