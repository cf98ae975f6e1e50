// Global norm and inf/NaN skip with tensor parallelism: run with 4 ranks
// and SMP_TP_SIZE=2, the optimizer sharding over RDP (2 ranks) and the
// norm summed over MP (= the TP pair here). Tensors "dist.*" differ per TP
// rank (TP slices); "rep.*" are replicated across TP and counted once
// (in_norm only on tp_rank 0).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "optim_mpi_common.h"

namespace smp::optim::testing {
namespace {

TEST(TpNorm, ReplicatedTensorsCountOnceAndSkipIsGlobal) {
  comm::Context &c = ctx();
  ASSERT_EQ(c.layout().tp_size(), 2) << "run with SMP_TP_SIZE=2";
  comm::Communicator &rdp = c.group(topo::Group::RDP);
  comm::Communicator &mp = c.group(topo::Group::MP);
  const int tp_rank = c.group(topo::Group::TP).rank();
  const int n = rdp.size(), r = rdp.rank();

  // Same names, counts and dtypes on every rank; data: dist.* per tp rank.
  auto model = make_model(21, 8, {DType::F32, DType::BF16});
  for (size_t t = 0; t < model.size(); ++t)
    model[t].spec.name = (t % 2 ? "rep." : "dist.") + model[t].spec.name;
  auto seed_of = [](size_t t, int tp) { return t % 2 ? 500u : 600u + static_cast<uint64_t>(tp); };

  OptimizerConfig cfg;
  cfg.check_finite = true;
  cfg.max_grad_norm = 1e9;  // norm computed, no clipping
  cfg.bucket_cap_bytes = 4096;
  auto b = bind(model);
  for (size_t t = 0; t < b.size(); ++t) b[t].in_norm = (t % 2 == 0) || tp_rank == 0;
  ShardedOptimizer opt(rdp, {&mp}, b, cfg);

  auto fill = [&](int step) {
    double ss = 0;  // independent: per tensor, per tp slice, the RDP average
    for (size_t t = 0; t < model.size(); ++t) {
      ModelTensor &m = model[t];
      for (int tp = 0; tp < 2; ++tp) {
        if (t % 2 == 1 && tp == 1) continue;  // replicated: once
        for (size_t i = 0; i < m.spec.count; ++i) {
          float sum = 0;
          for (int k = 0; k < n; ++k) sum += grad_value(seed_of(t, tp), k, step, t, i);
          const double a = round_to(m.spec.dtype, sum / static_cast<float>(n));
          ss += a * a;
        }
      }
      for (size_t i = 0; i < m.spec.count; ++i) m.set(m.grad, i, grad_value(seed_of(t, tp_rank), r, step, t, i));
    }
    return std::sqrt(ss);
  };

  const double norm = fill(1);
  const StepResult res = opt.step();
  EXPECT_FALSE(res.skipped);
  EXPECT_NEAR(res.grad_norm, norm, 1e-12 * norm);
  // Every rank of the world got the same number.
  double all[4] = {0, 0, 0, 0};
  c.group(topo::Group::World).allgather(&res.grad_norm, all, 1, DType::F64);
  for (double x : all) EXPECT_EQ(x, all[0]);

  // One TP rank of one replica poisons a TP-sliced gradient: all 4 skip.
  fill(2);
  if (tp_rank == 1 && r == 0) model[0].set(model[0].grad, 0, std::numeric_limits<float>::infinity());
  EXPECT_TRUE(opt.step().skipped);
  EXPECT_EQ(opt.step_count(), 1);
}

}  // namespace
}  // namespace smp::optim::testing

SMP_OPTIM_MPI_MAIN
