// Fused CPU AdamW kernel throughput against the memory-bandwidth bound,
// measured in the same run. Bytes count reads plus writes. The bound is an
// in-place read-modify-write loop with AdamW's own access pattern (read p,
// m, v, g; write p, m, v back: 28 bytes per element) and trivial
// arithmetic; memcpy and a copy loop are printed for reference only, since
// their destination lines are read before being written (write-allocate),
// traffic their 8 B/element count leaves out. Single thread. Prints:
//   case elems median_s GB/s bound_GB/s fraction_of_bound
//
//   adamw-kernel-bench [elems=16777216] [reps=9]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "optim/kernels.h"
#include "cli.h"
#include "timing.h"

namespace {

using smp::bench::median;
using smp::bench::now;

// A plain copy loop with ordinary (cached) stores, as the kernel makes:
// glibc's memcpy switches to non-temporal stores for large sizes, which
// some machines run slower. The bound is the faster of the two copies.
__attribute__((noinline, optimize("O3", "no-tree-loop-distribute-patterns"))) void copy_loop(
    const float *__restrict src, float *__restrict dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = src[i];
}

// The bound: AdamW's memory traffic (4 streams read, 3 written in place)
// with one add per stream, so the loop is limited by memory alone. Built
// like the kernels (AVX2 clone on x86-64), so both use the same loads and
// stores.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SMP_BENCH_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define SMP_BENCH_KERNEL
#endif
SMP_BENCH_KERNEL __attribute__((noinline, optimize("O3"))) void rmw_loop(float *__restrict p,
                                                         float *__restrict m,
                                                         float *__restrict v,
                                                         const float *__restrict g, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float x = g[i];
    p[i] += x;
    m[i] += x;
    v[i] += x;
  }
}

}  // namespace

int main(int argc, char **argv) {
  using namespace smp;
  size_t n = size_t{16} << 20;
  int reps = 9;
  CLI::App app{"adamw-kernel-bench: the fused AdamW kernel against the copy bound"};
  app.add_option("elements", n, "elements per tensor")->check(CLI::PositiveNumber);
  app.add_option("reps", reps, "timed repetitions (median)")->check(CLI::PositiveNumber);
  if (const int rc = smp::bench::parse(app, argc, argv); rc >= 0) return rc;
  std::vector<float> p(n, 0.5f), m(n, 0.0f), v(n, 0.0f), g(n), cpy_src(n, 1.0f), cpy_dst(n);
  std::vector<float> rp(n, 0.0f), rm(n, 0.0f), rv(n, 0.0f);
  std::vector<uint16_t> g16(n), out16(n);
  for (size_t i = 0; i < n; ++i) {
    g[i] = 1e-3f * static_cast<float>(i % 1000) - 0.5f;
    g16[i] = float_to_bf16(g[i]);
  }
  optim::AdamWHyper h;
  std::vector<uint16_t> gh(n);
  for (size_t i = 0; i < n; ++i) gh[i] = float_to_f16(g[i]);
  std::vector<double> t_copy, t_loop, t_rmw, t_f32, t_bf16, t_f16;
  for (int r = 0; r < reps + 1; ++r) {  // alternate the cases; round 0 warms up
    double t0 = now();
    std::memcpy(cpy_dst.data(), cpy_src.data(), n * sizeof(float));
    const double c = now() - t0;
    t0 = now();
    copy_loop(cpy_dst.data(), cpy_src.data(), n);
    const double l = now() - t0;
    t0 = now();
    rmw_loop(rp.data(), rm.data(), rv.data(), g.data(), n);
    const double w = now() - t0;
    h.step = r + 1;
    t0 = now();
    optim::adamw_update(p.data(), m.data(), v.data(), g.data(), nullptr, DType::F32, n, 1.0f, h);
    const double f = now() - t0;
    t0 = now();
    optim::adamw_update(p.data(), m.data(), v.data(), g16.data(), out16.data(), DType::BF16, n, 1.0f, h);
    const double b = now() - t0;
    t0 = now();
    optim::adamw_update(p.data(), m.data(), v.data(), gh.data(), out16.data(), DType::F16, n, 1.0f, h);
    const double hf = now() - t0;
    if (r > 0) {
      t_copy.push_back(c), t_loop.push_back(l), t_rmw.push_back(w);
      t_f32.push_back(f), t_bf16.push_back(b), t_f16.push_back(hf);
    }
  }
  const double memcpy_bw = 2.0 * 4 * n / median(t_copy) / 1e9;  // read + write
  const double loop_bw = 2.0 * 4 * n / median(t_loop) / 1e9;
  const double bound_bw = 28.0 * n / median(t_rmw) / 1e9;
  // float32: read p, m, v, g; write p, m, v = 28 bytes per element.
  // bf16 model: read p, m, v (f32), g (bf16); write p, m, v, bf16 copy = 28.
  const double f32_bw = 28.0 * n / median(t_f32) / 1e9;
  const double bf16_bw = 28.0 * n / median(t_bf16) / 1e9;
  const double f16_bw = 28.0 * n / median(t_f16) / 1e9;
  const auto row = [&](const char *name, const std::vector<double> &t, double bw) {
    std::printf("%s %zu %.6f %.2f %.2f %.2f\n", name, n, median(t), bw, bound_bw, bw / bound_bw);
  };
  row("memcpy", t_copy, memcpy_bw);
  row("copy_loop", t_loop, loop_bw);
  row("rmw_bound", t_rmw, bound_bw);
  row("smp_adamw_f32", t_f32, f32_bw);
  row("smp_adamw_f16", t_f16, f16_bw);
  row("smp_adamw_bf16", t_bf16, bf16_bw);
  volatile float sink = p[n / 2] + cpy_dst[n / 3] + rp[n / 4] + bf16_to_float(out16[n / 5]);
  (void)sink;
  return 0;
}
