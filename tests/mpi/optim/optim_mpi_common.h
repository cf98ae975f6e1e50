// Shared pieces of the multi-rank optimizer tests: a gtest main that starts
// and ends the smp world, deterministic per-rank gradients whose sums are
// exact in float32 (so the reference can average them in any order), and
// the reference model the sharded step is compared with.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "comm/context.h"
#include "common/dtype.h"
#include "optim/sharded_optimizer.h"

namespace smp::optim::testing {

inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// k * 2^-10 with |k| <= 255: exact in F32, BF16 and F16, and any sum of
// up to 2^16 of them is exact in float32.
inline float grad_value(uint64_t seed, int rank, int step, size_t tensor, size_t i) {
  const uint64_t h = mix64(seed ^ mix64((static_cast<uint64_t>(rank) << 40) ^
                                        (static_cast<uint64_t>(step) << 20) ^ (tensor << 50) ^ i));
  return static_cast<float>(static_cast<int>(h % 511) - 255) * (1.0f / 1024.0f);
}

inline float round_to(DType d, float x) {
  if (d == DType::BF16) return bf16_to_float(float_to_bf16(x));
  if (d == DType::F16) return f16_to_float(float_to_f16(x));
  return x;
}

// One model tensor in its own dtype (bytes) plus float views.
struct ModelTensor {
  TensorSpec spec;
  std::vector<unsigned char> param, grad;  // spec.count elements of spec.dtype
  float get(const std::vector<unsigned char> &buf, size_t i) const {
    if (spec.dtype == DType::F32) {
      float f;
      std::memcpy(&f, buf.data() + 4 * i, 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, buf.data() + 2 * i, 2);
    return spec.dtype == DType::BF16 ? bf16_to_float(h) : f16_to_float(h);
  }
  void set(std::vector<unsigned char> &buf, size_t i, float x) const {
    if (spec.dtype == DType::F32) {
      std::memcpy(buf.data() + 4 * i, &x, 4);
      return;
    }
    const uint16_t h = spec.dtype == DType::BF16 ? float_to_bf16(x) : float_to_f16(x);
    std::memcpy(buf.data() + 2 * i, &h, 2);
  }
};

// Random tensor list, the same on every rank for a seed: odd sizes, an
// empty tensor, dtypes from `dtypes`.
inline std::vector<ModelTensor> make_model(uint64_t seed, size_t count, std::vector<DType> dtypes) {
  std::mt19937_64 rng(seed);
  std::vector<ModelTensor> m;
  for (size_t i = 0; i < count; ++i) {
    ModelTensor t;
    t.spec.name = "block" + std::to_string(i / 3) + ".p" + std::to_string(i % 3);
    const size_t kind = rng() % 4;
    t.spec.count = i == 2 ? 0 : kind == 0 ? 1 + rng() % 9 : kind == 1 ? 1 + rng() % 300 : 1 + rng() % 6000;
    t.spec.dtype = dtypes[rng() % dtypes.size()];
    const size_t ds = dtype_size(t.spec.dtype);
    t.param.resize(t.spec.count * ds);
    t.grad.resize(t.spec.count * ds);
    std::normal_distribution<float> dist(0.0f, 0.5f);
    for (size_t k = 0; k < t.spec.count; ++k) t.set(t.param, k, dist(rng));
    m.push_back(std::move(t));
  }
  return m;
}

inline std::vector<TensorBinding> bind(std::vector<ModelTensor> &model) {
  std::vector<TensorBinding> b;
  for (ModelTensor &t : model) b.push_back({t.spec, t.param.data(), t.grad.data(), true});
  return b;
}

// Fills this rank's gradients for `step`; returns the group average of
// every tensor as the reduce-scatter computes it (exact sum, one division
// by n in float32, one rounding to the tensor's dtype).
inline std::vector<std::vector<float>> fill_grads(std::vector<ModelTensor> &model, uint64_t seed,
                                                  int rank, int nranks, int step) {
  std::vector<std::vector<float>> avg(model.size());
  for (size_t t = 0; t < model.size(); ++t) {
    ModelTensor &m = model[t];
    avg[t].resize(m.spec.count);
    for (size_t i = 0; i < m.spec.count; ++i) {
      float sum = 0;
      for (int r = 0; r < nranks; ++r) sum += grad_value(seed, r, step, t, i);
      avg[t][i] = round_to(m.spec.dtype, sum / static_cast<float>(nranks));
      m.set(m.grad, i, grad_value(seed, rank, step, t, i));
    }
  }
  return avg;
}

inline comm::Context &ctx() { return comm::Context::get(); }

// The cases the step on CUDA memory is checked on against the step on host
// memory (tests/gpu/gpu_optim_test.cc).
struct DeviceCase {
  const char *name;
  OptimizerConfig config;
  std::vector<DType> dtypes;
  double grad_scale = 1.0;
  int inf_step = -1;  // a step where one rank's gradients hold an inf
};

inline OptimizerConfig adamw_config(double max_norm = 0, bool check_finite = false,
                                    size_t bucket_cap_bytes = OptimizerConfig{}.bucket_cap_bytes) {
  OptimizerConfig c;
  c.kind = Kind::AdamW;
  c.adamw.lr = 1e-2;
  c.adamw.weight_decay = 0.05;
  c.max_grad_norm = max_norm;
  c.check_finite = check_finite;
  c.bucket_cap_bytes = bucket_cap_bytes;
  return c;
}

inline OptimizerConfig sgd_config(double momentum, bool nesterov,
                                  size_t bucket_cap_bytes = OptimizerConfig{}.bucket_cap_bytes) {
  OptimizerConfig c;
  c.kind = Kind::Sgd;
  c.sgd.lr = 0.1;
  c.sgd.momentum = momentum;
  c.sgd.nesterov = nesterov;
  c.sgd.weight_decay = 0.01;
  c.bucket_cap_bytes = bucket_cap_bytes;
  return c;
}

inline const std::vector<DType> kF32 = {DType::F32};
inline const std::vector<DType> kMixed = {DType::F32, DType::BF16, DType::F16};

}  // namespace smp::optim::testing

// gtest main for the MPI tests: every rank runs every test in the same
// order (and prints its own failures); mpirun fails if any rank does.
#define SMP_OPTIM_MPI_MAIN                  \
  int main(int argc, char **argv) {         \
    ::testing::InitGoogleTest(&argc, argv); \
    smp::comm::Context::init();             \
    const int rc = RUN_ALL_TESTS();         \
    smp::comm::Context::finalize();         \
    return rc;                              \
  }
