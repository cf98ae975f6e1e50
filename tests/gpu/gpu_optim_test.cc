// The sharded optimizer on CUDA memory against the same optimizer on host
// memory, side by side in one process on the same data: every step's
// parameters, skip decision, norm and clipping coefficient, and every state
// buffer (export_state). The host optimizer is the reference (its CPU path
// is proven against a scalar model by tests/mpi/optim); the device one runs
// the CUDA kernels on device-resident state, its collectives on the device
// backends (1 rank: NCCL; 2 ranks sharing the GPU: the staged backend) on
// a non-default stream. Fresh random model and gradients every run (the
// seed is printed), device parameters poisoned (NaN) before every step and
// gather, so an element the device path forgot cannot match.
//
// Tolerances: float32 values within 1e-6 relative (the kernels round as
// the CPU ones operation by operation, so they are in fact expected equal);
// a BF16 / F16 model copy within one unit in the last place of its dtype.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "gpu_util.h"
#include "optim_mpi_common.h"

namespace smp::optim {
namespace {

using gpu_test::DeviceBuffer;
using testing::ctx;
using testing::fill_grads;
using testing::make_model;
using testing::ModelTensor;

// One seed for all ranks (the model must be the same everywhere), fresh
// per case: rank 0 draws it.
uint64_t shared_seed() {
  uint64_t s = ctx().world_rank() == 0 ? gpu_test::fresh_seed() : 0;
  ctx().group(topo::Group::World).broadcast(&s, 1, DType::I64, 0);
  return s;
}

bool close_f32(float d, float h) {
  if (std::isnan(d) || std::isnan(h)) return false;
  return d == h || std::fabs(d - h) <= 1e-6f * std::fabs(h);
}

// Within one unit in the last place of the 16-bit dtype at h.
bool close_typed(DType t, float d, float h) {
  if (t == DType::F32) return close_f32(d, h);
  if (std::isnan(d) || std::isnan(h)) return false;
  const float rel = t == DType::BF16 ? 0x1p-7f : 0x1p-10f;
  const float floor = t == DType::BF16 ? std::numeric_limits<float>::denorm_min() : 0x1p-24f;
  return std::fabs(d - h) <= std::max(std::fabs(h) * rel, floor);
}

// The model twice: host tensors (the reference's) and device copies.
struct Twin {
  std::vector<ModelTensor> host;
  std::vector<std::unique_ptr<DeviceBuffer>> dparam, dgrad;

  explicit Twin(std::vector<ModelTensor> m) : host(std::move(m)) {
    for (ModelTensor &t : host) {
      dparam.push_back(std::make_unique<DeviceBuffer>(t.param.size()));
      dgrad.push_back(std::make_unique<DeviceBuffer>(t.grad.size()));
      if (!t.param.empty()) dparam.back()->upload(t.param.data());
    }
  }
  std::vector<TensorBinding> host_bindings() { return testing::bind(host); }
  std::vector<TensorBinding> device_bindings() {
    std::vector<TensorBinding> b;
    for (size_t i = 0; i < host.size(); ++i)
      b.push_back({host[i].spec, dparam[i]->get(), dgrad[i]->get(), true});
    return b;
  }
  void upload_grads() {
    for (size_t i = 0; i < host.size(); ++i)
      if (!host[i].grad.empty()) dgrad[i]->upload(host[i].grad.data());
  }
  void poison_params() {
    for (size_t i = 0; i < host.size(); ++i) {
      if (host[i].param.empty()) continue;
      dparam[i]->poison();
      std::memset(host[i].param.data(), 0xff, host[i].param.size());
    }
  }
  // Device parameters equal to the host ones (within the dtype's rounding).
  void expect_params_match(const std::string &when) {
    for (size_t i = 0; i < host.size(); ++i) {
      const ModelTensor &t = host[i];
      std::vector<unsigned char> got(t.param.size());
      if (!got.empty()) dparam[i]->download(got.data());
      size_t bad = 0;
      for (size_t k = 0; k < t.spec.count; ++k) {
        const float d = t.get(got, k), h = t.get(t.param, k);
        if (!close_typed(t.spec.dtype, d, h) && bad++ < 3)
          ADD_FAILURE() << when << ": tensor " << t.spec.name << " (" << dtype_name(t.spec.dtype)
                        << ") [" << k << "]: device " << d << ", host " << h;
      }
      EXPECT_EQ(bad, 0u) << when << ": tensor " << t.spec.name;
    }
  }
};

void expect_states_match(ShardedOptimizer &h, ShardedOptimizer &d, const std::string &when) {
  ASSERT_EQ(h.state_names(), d.state_names());
  const size_t n = h.layout().shard_elems();
  for (const std::string &name : h.state_names()) {
    std::vector<float> a(n), b(n, std::numeric_limits<float>::quiet_NaN());
    h.export_state(name, a.data());
    d.export_state(name, b.data());
    size_t bad = 0;
    for (size_t k = 0; k < n; ++k)
      if (!close_f32(b[k], a[k]) && bad++ < 3)
        ADD_FAILURE() << when << ": state " << name << "[" << k << "]: device " << b[k] << ", host " << a[k];
    EXPECT_EQ(bad, 0u) << when << ": state " << name;
  }
}

void expect_results_match(const StepResult &h, const StepResult &d, const std::string &when) {
  EXPECT_EQ(h.skipped, d.skipped) << when;
  // The norm is a double sum in a different order on the device; an inf
  // gradient makes both non-finite.
  if (std::isfinite(h.grad_norm))
    EXPECT_NEAR(d.grad_norm, h.grad_norm, 1e-9 * std::fabs(h.grad_norm)) << when;
  else
    EXPECT_FALSE(std::isfinite(d.grad_norm)) << when << ": device norm " << d.grad_norm;
  EXPECT_NEAR(d.clip_coef, h.clip_coef, 1e-9) << when;
}

using Case = testing::DeviceCase;
using testing::kF32;
using testing::kMixed;

class GpuOptim : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess); }
  void TearDown() override { cudaStreamDestroy(stream_); }

  void run(const Case &c, int steps = 4) {
    comm::Communicator &world = ctx().group(topo::Group::World);
    const int rank = world.rank(), n = world.size();
    const uint64_t seed = shared_seed();
    std::printf("rank %d: case %s, seed %llu\n", rank, c.name, static_cast<unsigned long long>(seed));
    Twin m(make_model(seed, 11, c.dtypes));
    OptimizerConfig cfg = c.config;
    cfg.bucket_cap_bytes = 8192;  // several buckets per dtype: overlap and bucket seams
    ShardedOptimizer host(world, {}, m.host_bindings(), cfg);
    ShardedOptimizer dev(world, {}, m.device_bindings(), cfg);
    dev.set_stream(stream_);
    ASSERT_EQ(host.memory(), Memory::Host);
    ASSERT_EQ(dev.memory(), Memory::Cuda);
    expect_states_match(host, dev, std::string(c.name) + " after creation");

    for (int s = 0; s < steps; ++s) {
      const std::string when = std::string(c.name) + " step " + std::to_string(s);
      fill_grads(m.host, seed, rank, n, s);
      const bool inject = s == c.inf_step;
      if (inject && rank == s % n)  // one rank's inf must skip every rank
        for (ModelTensor &t : m.host)
          if (t.spec.count > 0) {
            t.set(t.grad, t.spec.count / 2, std::numeric_limits<float>::infinity());
            break;
          }
      m.upload_grads();
      if (!inject) m.poison_params();  // a skipped step leaves them as they were
      const StepResult rh = host.step(c.grad_scale);
      const StepResult rd = dev.step(c.grad_scale);
      ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
      EXPECT_EQ(rh.skipped, inject) << when;
      expect_results_match(rh, rd, when);
      m.expect_params_match(when);
      expect_states_match(host, dev, when);
      EXPECT_EQ(host.step_count(), dev.step_count()) << when;
    }

    // Restore path: the host's state (scaled, so it differs from what the
    // device holds) imported into both, the parameters rebuilt from it.
    const size_t shard = host.layout().shard_elems();
    for (const std::string &name : host.state_names()) {
      std::vector<float> st(shard);
      host.export_state(name, st.data());
      for (float &x : st) x *= 1.5f;
      host.import_state(name, st.data());
      dev.import_state(name, st.data());
    }
    expect_states_match(host, dev, std::string(c.name) + " after import");
    m.poison_params();
    host.gather_params();
    dev.gather_params();
    ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    m.expect_params_match(std::string(c.name) + " after gather_params");
  }

  cudaStream_t stream_ = nullptr;
};

OptimizerConfig adamw(double max_norm = 0, bool check_finite = false) {
  return testing::adamw_config(max_norm, check_finite);
}
OptimizerConfig sgd(double momentum, bool nesterov) { return testing::sgd_config(momentum, nesterov); }

TEST_F(GpuOptim, AdamWFloat32) { run({"adamw_f32", adamw(), kF32}); }
TEST_F(GpuOptim, AdamWMixedPrecisionClipped) {
  run({"adamw_mixed_clip", adamw(0.5), kMixed, 0.5});
}
TEST_F(GpuOptim, AdamWSkipsInfOnEveryRank) {
  run({"adamw_mixed_finite", adamw(1.0, true), kMixed, 1.0, 2});
}
TEST_F(GpuOptim, SgdNesterovMixedPrecision) { run({"sgd_nesterov_mixed", sgd(0.9, true), kMixed}); }
TEST_F(GpuOptim, SgdPlainFloat32) { run({"sgd_plain_f32", sgd(0, false), kF32}); }

// Host and device tensors in one list: an argument error on every rank.
TEST_F(GpuOptim, MixedHostAndDeviceIsInvalid) {
  comm::Communicator &world = ctx().group(topo::Group::World);
  Twin m(make_model(shared_seed(), 5, kF32));
  std::vector<TensorBinding> b = m.device_bindings();
  b[3].grad = m.host[3].grad.data();  // tensor 3 (non-empty: only #2 is) on the host
  try {
    ShardedOptimizer opt(world, {}, b, adamw());
    ADD_FAILURE() << "a mixed tensor list was accepted";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("host memory"), std::string::npos) << e.what();
  }
}

// Ranks that disagree on the memory (rank 0 device, the others host) fail
// together instead of pairing NCCL with MPI.
TEST_F(GpuOptim, RanksDisagreeingOnMemoryFailTogether) {
  comm::Communicator &world = ctx().group(topo::Group::World);
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  Twin m(make_model(shared_seed(), 5, kF32));
  try {
    ShardedOptimizer opt(world, {}, world.rank() == 0 ? m.device_bindings() : m.host_bindings(), adamw());
    ADD_FAILURE() << "ranks with different memory were accepted";
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("host vs CUDA memory"), std::string::npos) << e.what();
  }
}

// The raw state pointer is host-only: a device optimizer says so.
TEST_F(GpuOptim, StatePointerIsHostOnly) {
  comm::Communicator &world = ctx().group(topo::Group::World);
  Twin m(make_model(shared_seed(), 4, kF32));
  ShardedOptimizer opt(world, {}, m.device_bindings(), adamw());
  EXPECT_THROW(opt.state("master"), Error);
  EXPECT_THROW(opt.export_state("no_such_state", nullptr), Error);
}

}  // namespace
}  // namespace smp::optim

int main(int argc, char **argv) {
  gpu_test::skip_without_gpu("gpu_optim_test");  // before MPI: every rank agrees
  ::testing::InitGoogleTest(&argc, argv);
  smp::comm::Context::init();
  const int rc = RUN_ALL_TESTS();
  smp::comm::Context::finalize();
  return rc;
}
