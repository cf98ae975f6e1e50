// The sharded step on n ranks against the scalar single-process reference
// (tests/unit/optim/reference_optim.h) on the same averaged gradients:
// AdamW in float32 and mixed precision, SGD variants, several bucket caps
// (many small buckets to one big one); the optimizer-state memory per rank.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "optim_mpi_common.h"
#include "reference_optim.h"

namespace smp::optim::testing {
namespace {

constexpr int kSteps = 5;

comm::Communicator &dp() { return ctx().group(topo::Group::DP); }

struct Case {
  const char *name;
  Kind kind;
  std::vector<DType> dtypes;
  size_t bucket_cap;
  double momentum, dampening, wd;
  bool nesterov;
};

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

class ShardedStep : public ::testing::TestWithParam<Case> {};

TEST_P(ShardedStep, MatchesSingleProcessReference) {
  const Case c = GetParam();
  const int n = dp().size(), rank = dp().rank();
  const uint64_t seed = 1234 + static_cast<uint64_t>(c.bucket_cap);
  auto model = make_model(seed, 17, c.dtypes);

  OptimizerConfig cfg;
  cfg.kind = c.kind;
  cfg.bucket_cap_bytes = c.bucket_cap;
  cfg.adamw.lr = 2e-2;  // large enough that params move well beyond rounding
  cfg.adamw.weight_decay = c.wd;
  cfg.sgd.lr = 0.1;
  cfg.sgd.momentum = c.momentum;
  cfg.sgd.dampening = c.dampening;
  cfg.sgd.weight_decay = c.wd;
  cfg.sgd.nesterov = c.nesterov;

  // Reference: float32 master per tensor (from the model's initial values).
  std::vector<std::vector<float>> ref_p(model.size());
  std::vector<RefAdamW> adam(model.size());
  std::vector<RefSgd> sgd(model.size());
  for (size_t t = 0; t < model.size(); ++t) {
    for (size_t i = 0; i < model[t].spec.count; ++i) ref_p[t].push_back(model[t].get(model[t].param, i));
    adam[t].lr = cfg.adamw.lr;
    adam[t].weight_decay = c.wd;
    sgd[t].lr = cfg.sgd.lr;
    sgd[t].momentum = c.momentum;
    sgd[t].dampening = c.dampening;
    sgd[t].weight_decay = c.wd;
    sgd[t].nesterov = c.nesterov;
  }

  ShardedOptimizer opt(dp(), {}, bind(model), cfg);
  EXPECT_GT(opt.layout().buckets().size(), 0u);
  for (int step = 1; step <= kSteps; ++step) {
    const auto avg = fill_grads(model, seed, rank, n, step);
    const StepResult r = opt.step();
    EXPECT_FALSE(r.skipped);
    for (size_t t = 0; t < model.size(); ++t) {
      if (c.kind == Kind::AdamW) adam[t].step(ref_p[t], avg[t]);
      else sgd[t].step(ref_p[t], avg[t]);
    }
  }
  EXPECT_EQ(opt.step_count(), kSteps);

  // Model copy: float32 tensors within 1e-6 relative; BF16/F16 within half
  // an ulp of their format around the reference master (round to nearest).
  size_t checked = 0;
  for (size_t t = 0; t < model.size(); ++t) {
    const DType d = model[t].spec.dtype;
    const double rel = d == DType::F32 ? 1e-6 : d == DType::BF16 ? 1.0 / 256 : 1.0 / 2048;
    for (size_t i = 0; i < model[t].spec.count; ++i, ++checked) {
      const float got = model[t].get(model[t].param, i), want = ref_p[t][i];
      ASSERT_TRUE(close_rel(got, want, rel * (1 + 1e-4), d == DType::F16 ? 6.2e-5 : 1e-30))
          << model[t].spec.name << "[" << i << "] " << dtype_name(d) << ": " << got << " vs "
          << want << " (rank " << rank << " of " << n << ")";
    }
  }
  EXPECT_GT(checked, 1000u);

  // Master shard: float32 everywhere, within 1e-6 of the reference.
  const float *master = opt.state("master");
  for (const Piece &p : opt.layout().pieces(rank))
    for (size_t k = 0; k < p.length; ++k)
      ASSERT_TRUE(close_rel(master[p.shard_offset + k], ref_p[p.tensor][p.tensor_offset + k], 1e-6))
          << model[p.tensor].spec.name << "[" << p.tensor_offset + k << "]";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ShardedStep,
    ::testing::Values(
        Case{"AdamW_F32_small_buckets", Kind::AdamW, {DType::F32}, 4096, 0, 0, 0.01, false},
        Case{"AdamW_F32_one_bucket", Kind::AdamW, {DType::F32}, 64u << 20, 0, 0, 0.0, false},
        Case{"AdamW_mixed_BF16", Kind::AdamW, {DType::BF16}, 8192, 0, 0, 0.01, false},
        Case{"AdamW_mixed_all_dtypes", Kind::AdamW, {DType::BF16, DType::F16, DType::F32}, 6000,
             0, 0, 0.01, false},
        Case{"SGD_momentum_F32", Kind::Sgd, {DType::F32}, 4096, 0.9, 0, 0, false},
        Case{"SGD_dampening_wd_F32", Kind::Sgd, {DType::F32}, 10000, 0.9, 0.2, 1e-3, false},
        Case{"SGD_nesterov_BF16", Kind::Sgd, {DType::BF16}, 5000, 0.8, 0, 1e-2, true},
        Case{"SGD_plain_F32", Kind::Sgd, {DType::F32}, 4096, 0, 0, 0, false}),
    [](const auto &info) { return std::string(info.param.name); });

TEST(ShardedMemory, StatePerRankIsTheShardOfTheTotal) {
  const int n = dp().size();
  auto model = make_model(99, 30, {DType::F32, DType::BF16});
  OptimizerConfig cfg;
  cfg.bucket_cap_bytes = 16384;
  ShardedOptimizer opt(dp(), {}, bind(model), cfg);
  const ShardLayout &L = opt.layout();
  const size_t total = L.total_elems();
  size_t max_pad = 0;
  for (const Bucket &b : L.buckets()) max_pad += static_cast<size_t>(n) * align_elems(b.dtype, 64);
  // AdamW: master, exp_avg, exp_avg_sq: 12 bytes per element of the shard.
  EXPECT_EQ(opt.state_bytes(), 12 * L.shard_elems());
  EXPECT_EQ(L.shard_elems() * static_cast<size_t>(n), L.flat_elems());
  EXPECT_GE(L.flat_elems(), total);
  EXPECT_LT(L.flat_elems() - total, max_pad);
  // So: total/n <= shard < total/n + padding/n.
  EXPECT_LE(12 * total, 12 * L.shard_elems() * static_cast<size_t>(n));
  EXPECT_LT(opt.state_bytes(), 12 * (total + max_pad) / static_cast<size_t>(n) + 12);
  // Every bucket's slice starts on a 64-byte boundary in every state.
  for (const std::string &name : opt.state_names())
    for (const Bucket &b : L.buckets())
      EXPECT_EQ(reinterpret_cast<uintptr_t>(opt.state(name) + b.shard_offset) % 64, 0u) << name;
  // SGD with momentum holds two states, without momentum one.
  OptimizerConfig s = cfg;
  s.kind = Kind::Sgd;
  s.sgd.momentum = 0.9;
  EXPECT_EQ(ShardedOptimizer(dp(), {}, bind(model), s).state_bytes(), 8 * L.shard_elems());
  s.sgd.momentum = 0;
  EXPECT_EQ(ShardedOptimizer(dp(), {}, bind(model), s).state_bytes(), 4 * L.shard_elems());
}

}  // namespace
}  // namespace smp::optim::testing

SMP_OPTIM_MPI_MAIN
