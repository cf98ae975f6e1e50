// The C API's sharded optimizer (smp_optimizer_*) with CUDA tensors, as a
// program uses it: default stream, state read back with
// smp_optimizer_export_state, restored with import_state + gather_params.
// Compared with the same calls on host tensors over the same fresh random
// data (float32 master/moments within 1e-6 relative, bf16/f16 parameters
// within one unit in their last place); device parameters poisoned (NaN)
// before every step. A list mixing host and device tensors fails with
// SMP_ERR_INVALID_ARGUMENT on every rank. Run with 2 ranks sharing the GPU
// (NCCL declines a shared GPU: the staged backend).
#include <cuda_runtime_api.h>
#include <smp/smp.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gpu_util.h"

using gpu_test::DeviceBuffer;

namespace {

int g_rank = 0, g_failures = 0;
uint64_t g_seed = 0;

void expect(bool ok, const std::string &what) {
  if (!ok && ++g_failures <= 20)
    std::fprintf(stderr, "rank %d: FAIL %s (seed %llu)\n", g_rank, what.c_str(),
                 static_cast<unsigned long long>(g_seed));
}

void ok(smp_status_t s, const std::string &what) {
  expect(s == SMP_SUCCESS, what + ": " + smp_status_string(s) + ": " + smp_last_error());
}

float bits_f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t f_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float load(smp_dtype_t t, const unsigned char *p) {
  if (t == SMP_FLOAT32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (t == SMP_BFLOAT16) return bits_f(static_cast<uint32_t>(h) << 16);
  // binary16 -> float (normal, subnormal, inf/NaN)
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) return (sign ? -1.0f : 1.0f) * std::ldexp(static_cast<float>(m), -24);
  if (e == 31) return bits_f(sign | 0x7f800000u | (m << 13));
  return bits_f(sign | ((e + 112) << 23) | (m << 13));
}
// Random parameter / gradient values in dtype t (bf16 / f16 by truncating
// a float's bits: any finite value of modest size).
void store_random(smp_dtype_t t, unsigned char *p, std::mt19937_64 &rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  const float x = d(rng);
  if (t == SMP_FLOAT32) {
    std::memcpy(p, &x, 4);
  } else if (t == SMP_BFLOAT16) {
    const uint16_t h = static_cast<uint16_t>(f_bits(x) >> 16);
    std::memcpy(p, &h, 2);
  } else {
    const float a = std::fmin(std::fabs(x), 60000.0f);
    int e = 0;
    const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    uint16_t h = 0;
    if (a >= 0x1p-14f) h = static_cast<uint16_t>(((e + 14) << 10) | (static_cast<int>(m * 2048) & 0x3ff));
    if (x < 0) h |= 0x8000;
    std::memcpy(p, &h, 2);
  }
}
size_t esize(smp_dtype_t t) { return t == SMP_FLOAT32 ? 4 : 2; }

bool close(smp_dtype_t t, float d, float h) {
  if (std::isnan(d) || std::isnan(h)) return false;
  const float rel = t == SMP_FLOAT32 ? 1e-6f : t == SMP_BFLOAT16 ? 0x1p-7f : 0x1p-10f;
  return d == h || std::fabs(d - h) <= std::fmax(std::fabs(h) * rel, t == SMP_FLOAT16 ? 0x1p-24f : 0.0f);
}

struct Tensor {
  std::string name;
  size_t count;
  smp_dtype_t dtype;
  std::vector<unsigned char> param, grad;  // host copies
  std::unique_ptr<DeviceBuffer> dparam, dgrad;
};

smp_optimizer_t create(std::vector<Tensor> &model, bool device, bool mix_one = false) {
  smp_optimizer_config_t c = SMP_OPTIMIZER_CONFIG_INIT;
  c.lr = 1e-2;
  c.max_grad_norm = 1.0;
  c.check_finite = 1;
  c.bucket_bytes = 4096;
  std::vector<smp_optimizer_tensor_t> t;
  for (size_t i = 0; i < model.size(); ++i) {
    Tensor &m = model[i];
    const bool dev = device && !(mix_one && i == 1);
    t.push_back({m.name.c_str(), m.count, m.dtype, dev ? m.dparam->get() : m.param.data(),
                 dev ? m.dgrad->get() : m.grad.data(), 0});
  }
  smp_optimizer_t o = nullptr;
  const smp_status_t s = smp_optimizer_create(&c, t.data(), t.size(), &o);
  if (mix_one) {
    expect(s == SMP_ERR_INVALID_ARGUMENT && o == nullptr,
           std::string("mixed host/device list rejected (got ") + smp_status_string(s) + ": " +
               smp_last_error() + ")");
    return nullptr;
  }
  ok(s, device ? "create (cuda)" : "create (host)");
  return o;
}

void compare_params(std::vector<Tensor> &model, const std::string &when) {
  for (Tensor &m : model) {
    std::vector<unsigned char> got(m.param.size());
    if (!got.empty()) m.dparam->download(got.data());
    size_t bad = 0;
    for (size_t k = 0; k < m.count; ++k)
      if (!close(m.dtype, load(m.dtype, got.data() + k * esize(m.dtype)),
                 load(m.dtype, m.param.data() + k * esize(m.dtype))))
        ++bad;
    expect(bad == 0, when + ": tensor " + m.name + ": " + std::to_string(bad) + " parameters differ");
  }
}

void compare_states(smp_optimizer_t h, smp_optimizer_t d, const std::string &when) {
  size_t n = 0, ns = 0, dn = 0, dns = 0;
  ok(smp_optimizer_shard_info(h, &n, &ns, nullptr, nullptr), "shard_info (host)");
  ok(smp_optimizer_shard_info(d, &dn, &dns, nullptr, nullptr), "shard_info (cuda)");
  expect(n == dn && ns == dns, when + ": same shard shape");
  for (size_t i = 0; i < ns; ++i) {
    const char *name = nullptr;
    ok(smp_optimizer_state_name(h, i, &name), "state_name");
    std::vector<float> a(n), b(n, NAN);
    ok(smp_optimizer_export_state(h, name, a.data(), n), "export_state (host)");
    ok(smp_optimizer_export_state(d, name, b.data(), n), "export_state (cuda)");
    size_t bad = 0;
    for (size_t k = 0; k < n; ++k) bad += !close(SMP_FLOAT32, b[k], a[k]);
    expect(bad == 0, when + ": state " + name + ": " + std::to_string(bad) + " values differ");
  }
}

}  // namespace

int main() {
  gpu_test::skip_without_gpu("gpu_optim_capi_test");
  if (smp_init(nullptr) != SMP_SUCCESS) {
    std::fprintf(stderr, "smp_init: %s\n", smp_last_error());
    return 1;
  }
  int size = 1;
  smp_rank(SMP_WORLD, &g_rank);
  smp_size(SMP_WORLD, &size);
  unsigned long long seed = g_rank == 0 ? gpu_test::fresh_seed() : 0;
  ok(smp_broadcast(&seed, 1, SMP_INT64, 0, SMP_WORLD, nullptr), "broadcast seed");
  g_seed = seed;
  std::printf("rank %d: seed %llu\n", g_rank, seed);

  // The same model on every rank; gradients differ per rank.
  std::mt19937_64 rng(seed);
  const smp_dtype_t dtypes[] = {SMP_FLOAT32, SMP_BFLOAT16, SMP_FLOAT16};
  std::vector<Tensor> model;
  for (int i = 0; i < 7; ++i) {
    Tensor t;
    t.name = "w" + std::to_string(i);
    t.count = i == 3 ? 0 : 1 + rng() % 3000;
    t.dtype = dtypes[rng() % 3];
    t.param.resize(t.count * esize(t.dtype));
    t.grad.resize(t.param.size());
    for (size_t k = 0; k < t.count; ++k) store_random(t.dtype, t.param.data() + k * esize(t.dtype), rng, 0.5f);
    t.dparam = std::make_unique<DeviceBuffer>(t.param.size());
    t.dgrad = std::make_unique<DeviceBuffer>(t.grad.size());
    if (t.count) t.dparam->upload(t.param.data());
    model.push_back(std::move(t));
  }

  create(model, true, /*mix_one=*/true);  // fails on every rank, nothing created
  smp_optimizer_t h = create(model, false), d = create(model, true);
  if (h && d) {
    compare_states(h, d, "after create");
    std::mt19937_64 grng(seed ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(g_rank + 1)));
    for (int step = 0; step < 3; ++step) {
      const std::string when = "step " + std::to_string(step);
      for (Tensor &m : model) {
        for (size_t k = 0; k < m.count; ++k) store_random(m.dtype, m.grad.data() + k * esize(m.dtype), grng, 0.1f);
        if (m.count) {
          m.dgrad->upload(m.grad.data());
          m.dparam->poison();
        }
      }
      int hs = -1, ds = -1;
      double hn = 0, dn = 0;
      ok(smp_optimizer_step(h, 0.5, &hs, &hn), when + " (host)");
      ok(smp_optimizer_step(d, 0.5, &ds, &dn), when + " (cuda)");
      GPU_CHECK(cudaDeviceSynchronize());
      expect(hs == 0 && ds == 0, when + ": not skipped");
      expect(std::fabs(dn - hn) <= 1e-9 * std::fabs(hn), when + ": norms " + std::to_string(dn) + " vs " + std::to_string(hn));
      compare_params(model, when);
      compare_states(h, d, when);
    }
    // Restore: the host's state into the device optimizer, parameters rebuilt.
    size_t n = 0, ns = 0;
    ok(smp_optimizer_shard_info(h, &n, &ns, nullptr, nullptr), "shard_info");
    for (size_t i = 0; i < ns; ++i) {
      const char *name = nullptr;
      ok(smp_optimizer_state_name(h, i, &name), "state_name");
      std::vector<float> st(n);
      ok(smp_optimizer_export_state(h, name, st.data(), n), "export (host)");
      for (float &x : st) x *= 0.75f;
      ok(smp_optimizer_import_state(h, name, st.data(), n), "import (host)");
      ok(smp_optimizer_import_state(d, name, st.data(), n), "import (cuda)");
    }
    for (Tensor &m : model)
      if (m.count) m.dparam->poison();
    ok(smp_optimizer_gather_params(h), "gather_params (host)");
    ok(smp_optimizer_gather_params(d), "gather_params (cuda)");
    GPU_CHECK(cudaDeviceSynchronize());
    compare_params(model, "after import + gather_params");
  }
  ok(smp_optimizer_destroy(h), "destroy (host)");
  ok(smp_optimizer_destroy(d), "destroy (cuda)");

  int bad = g_failures;
  smp_allreduce(&bad, &bad, 1, SMP_INT32, SMP_SUM, SMP_WORLD, nullptr);
  if (g_rank == 0) std::printf("gpu_optim_capi_test: %s (%d ranks)\n", bad ? "FAILED" : "passed", size);
  smp_finalize();
  return bad ? 1 : 0;
}
