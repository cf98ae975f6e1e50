// The sharded optimizer's device path (sharded_optimizer_device.cc) with
// host memory standing in for device memory (make_host_ops), against the
// host path on the same tensors' twins, under mpirun: the device path's own
// buffers and offsets (flat bucket buffer, the separate new-parameter
// shard, per-piece norms read back, non-in-place allgathers, copies out)
// must give the host path's parameters, state, norm and skip decision bit
// for bit, since both run the same CPU kernels and host collectives. On a
// GPU, tests/gpu/gpu_optim_test runs the same comparison with CUDA.
// Parameters are poisoned (NaN bytes) before every step and gather.
#include <cstring>
#include <limits>

#include "common/error.h"
#include "optim_mpi_common.h"

namespace smp::optim {
namespace {

using testing::ctx;
using testing::fill_grads;
using testing::make_model;
using testing::ModelTensor;

using Case = testing::DeviceCase;
using testing::kF32;
using testing::kMixed;

// Many buckets: every seam and slice offset matters.
constexpr size_t kBucketCap = 2048;
OptimizerConfig adamw(double max_norm = 0, bool check_finite = false) {
  return testing::adamw_config(max_norm, check_finite, kBucketCap);
}
OptimizerConfig sgd(double momentum, bool nesterov) { return testing::sgd_config(momentum, nesterov, kBucketCap); }

void poison(std::vector<ModelTensor> &m) {
  for (ModelTensor &t : m)
    if (!t.param.empty()) std::memset(t.param.data(), 0xff, t.param.size());  // data() may be NULL
}

void expect_same_params(const std::vector<ModelTensor> &a, const std::vector<ModelTensor> &b,
                        const std::string &when) {
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].param, b[i].param) << when << ": tensor " << a[i].spec.name;
}

void expect_same_state(ShardedOptimizer &h, ShardedOptimizer &d, const std::string &when) {
  ASSERT_EQ(h.state_names(), d.state_names());
  const size_t n = h.layout().shard_elems();
  for (const std::string &name : h.state_names()) {
    std::vector<float> a(n), b(n, std::numeric_limits<float>::quiet_NaN());
    h.export_state(name, a.data());
    d.export_state(name, b.data());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), n * sizeof(float))) << when << ": state " << name;
  }
}

void run(const Case &c, int steps = 4) {
  comm::Communicator &world = ctx().group(topo::Group::World);
  const int rank = world.rank(), n = world.size();
  uint64_t seed = 0;
  if (rank == 0) seed = std::random_device{}() * 0x9e3779b97f4a7c15ull + 1;
  world.broadcast(&seed, 1, DType::I64, 0);
  SCOPED_TRACE(std::string(c.name) + " seed " + std::to_string(seed));
  std::vector<ModelTensor> mh = make_model(seed, 13, c.dtypes), md = mh;
  std::vector<TensorBinding> bh = testing::bind(mh), bd = testing::bind(md);
  bh[4].in_norm = bd[4].in_norm = rank == 0;  // a replicated tensor counted once
  ShardedOptimizer host(world, {}, bh, c.config);
  ShardedOptimizer dev(world, {}, bd, c.config, "", make_host_ops());
  EXPECT_THROW(dev.state("master"), Error);
  expect_same_state(host, dev, "after creation");
  EXPECT_EQ(host.state_bytes(), dev.state_bytes());

  for (int s = 0; s < steps; ++s) {
    const std::string when = std::string(c.name) + " step " + std::to_string(s);
    fill_grads(mh, seed, rank, n, s);
    fill_grads(md, seed, rank, n, s);
    const bool inject = s == c.inf_step;
    if (inject && rank == s % n)
      for (auto *m : {&mh, &md})
        for (ModelTensor &t : *m)
          if (t.spec.count > 0) {
            t.set(t.grad, t.spec.count - 1, std::numeric_limits<float>::infinity());
            break;
          }
    if (!inject) {
      poison(mh);
      poison(md);
    }
    const StepResult rh = host.step(c.grad_scale), rd = dev.step(c.grad_scale);
    EXPECT_EQ(rh.skipped, inject) << when;
    EXPECT_EQ(rd.skipped, rh.skipped) << when;
    if (std::isfinite(rh.grad_norm)) EXPECT_EQ(rd.grad_norm, rh.grad_norm) << when;
    else EXPECT_FALSE(std::isfinite(rd.grad_norm)) << when;
    EXPECT_EQ(rd.clip_coef, rh.clip_coef) << when;
    EXPECT_EQ(dev.step_count(), host.step_count()) << when;
    expect_same_params(mh, md, when);
    expect_same_state(host, dev, when);
  }

  // Restore: the same (changed) state into both, parameters rebuilt.
  const size_t shard = host.layout().shard_elems();
  for (const std::string &name : host.state_names()) {
    std::vector<float> st(shard);
    host.export_state(name, st.data());
    for (float &x : st) x *= 1.25f;
    host.import_state(name, st.data());
    dev.import_state(name, st.data());
  }
  poison(mh);
  poison(md);
  host.gather_params();
  dev.gather_params();
  expect_same_params(mh, md, std::string(c.name) + " after import + gather_params");
  expect_same_state(host, dev, std::string(c.name) + " after import");
}

TEST(DevicePath, AdamWFloat32) { run({"adamw_f32", adamw(), kF32}); }
TEST(DevicePath, AdamWMixedClipped) { run({"adamw_mixed_clip", adamw(0.5), kMixed, 0.5}); }
TEST(DevicePath, AdamWSkipsInf) { run({"adamw_mixed_finite", adamw(1.0, true), kMixed, 1.0, 2}); }
TEST(DevicePath, SgdNesterovMixed) { run({"sgd_nesterov_mixed", sgd(0.9, true), kMixed}); }
TEST(DevicePath, SgdPlainFloat32) { run({"sgd_plain_f32", sgd(0, false), kF32}); }

}  // namespace
}  // namespace smp::optim

SMP_OPTIM_MPI_MAIN
