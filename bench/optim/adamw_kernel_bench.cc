// Fused CPU AdamW kernel throughput against the memory-bandwidth bound
// (memcpy measured in the same run). Bytes count reads plus writes, for
// the kernel and for memcpy alike. Single thread. Prints one line per case:
//   case elems median_s GB/s memcpy_GB/s fraction_of_bound
//
//   adamw-kernel-bench [elems=16777216] [reps=9]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "optim/kernels.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A plain copy loop with ordinary (cached) stores, as the kernel makes:
// glibc's memcpy switches to non-temporal stores for large sizes, which
// some machines run slower. The bound is the faster of the two copies.
__attribute__((noinline, optimize("O3", "no-tree-loop-distribute-patterns"))) void copy_loop(
    const float *__restrict src, float *__restrict dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = src[i];
}

}  // namespace

int main(int argc, char **argv) {
  using namespace smp;
  const size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : size_t{16} << 20;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 9;
  std::vector<float> p(n, 0.5f), m(n, 0.0f), v(n, 0.0f), g(n), cpy_src(n, 1.0f), cpy_dst(n);
  std::vector<uint16_t> g16(n), out16(n);
  for (size_t i = 0; i < n; ++i) {
    g[i] = 1e-3f * static_cast<float>(i % 1000) - 0.5f;
    g16[i] = float_to_bf16(g[i]);
  }
  optim::AdamWHyper h;
  std::vector<uint16_t> gh(n);
  for (size_t i = 0; i < n; ++i) gh[i] = float_to_f16(g[i]);
  std::vector<double> t_copy, t_loop, t_f32, t_bf16, t_f16;
  for (int r = 0; r < reps + 1; ++r) {  // alternate the cases; round 0 warms up
    double t0 = now();
    std::memcpy(cpy_dst.data(), cpy_src.data(), n * sizeof(float));
    const double c = now() - t0;
    t0 = now();
    copy_loop(cpy_dst.data(), cpy_src.data(), n);
    const double l = now() - t0;
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
    if (r > 0) t_copy.push_back(c), t_loop.push_back(l), t_f32.push_back(f), t_bf16.push_back(b), t_f16.push_back(hf);
  }
  const double memcpy_bw = 2.0 * 4 * n / median(t_copy) / 1e9;  // read + write
  const double loop_bw = 2.0 * 4 * n / median(t_loop) / 1e9;
  const double copy_bw = std::max(memcpy_bw, loop_bw);
  // float32: read p, m, v, g; write p, m, v = 28 bytes per element.
  // bf16 model: read p, m, v (f32), g (bf16); write p, m, v, bf16 copy = 28.
  const double f32_bw = 28.0 * n / median(t_f32) / 1e9;
  const double bf16_bw = 28.0 * n / median(t_bf16) / 1e9;
  std::printf("memcpy %zu %.6f %.2f %.2f %.2f\n", n, median(t_copy), memcpy_bw, copy_bw, memcpy_bw / copy_bw);
  std::printf("copy_loop %zu %.6f %.2f %.2f %.2f\n", n, median(t_loop), loop_bw, copy_bw, loop_bw / copy_bw);
  std::printf("smp_adamw_f32 %zu %.6f %.2f %.2f %.2f\n", n, median(t_f32), f32_bw, copy_bw, f32_bw / copy_bw);
  const double f16_bw = 28.0 * n / median(t_f16) / 1e9;
  std::printf("smp_adamw_f16 %zu %.6f %.2f %.2f %.2f\n", n, median(t_f16), f16_bw, copy_bw, f16_bw / copy_bw);
  std::printf("smp_adamw_bf16 %zu %.6f %.2f %.2f %.2f\n", n, median(t_bf16), bf16_bw, copy_bw, bf16_bw / copy_bw);
  volatile float sink = p[n / 2] + cpy_dst[n / 3] + bf16_to_float(out16[n / 5]);
  (void)sink;
  return 0;
}
