// The sharded step's agreements across ranks: the global gradient norm and
// clipping, the inf/NaN skip every rank takes together, state export and
// import, and the errors for mismatched or bad arguments.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/error.h"
#include "optim_mpi_common.h"
#include "reference_optim.h"

namespace smp::optim::testing {
namespace {

comm::Communicator &dp() { return ctx().group(topo::Group::DP); }

TEST(ShardedClip, GlobalNormMatchesAnIndependentSumAndClips) {
  const int n = dp().size(), rank = dp().rank();
  const uint64_t seed = 77;
  auto model = make_model(seed, 12, {DType::F32});
  OptimizerConfig cfg;
  cfg.bucket_cap_bytes = 3000;
  cfg.max_grad_norm = 0.5;  // below the norms seen here: clipping engages
  cfg.adamw.lr = 1e-2;
  std::vector<std::vector<float>> ref_p(model.size());
  std::vector<RefAdamW> adam(model.size());
  for (size_t t = 0; t < model.size(); ++t) {
    for (size_t i = 0; i < model[t].spec.count; ++i) ref_p[t].push_back(model[t].get(model[t].param, i));
    adam[t].lr = cfg.adamw.lr;
  }
  ShardedOptimizer opt(dp(), {}, bind(model), cfg);
  for (int step = 1; step <= 3; ++step) {
    const auto avg = fill_grads(model, seed, rank, n, step);
    const double grad_scale = step == 3 ? 0.25 : 1.0;  // as under loss scaling
    double ss = 0;  // independent: whole averaged gradients, in double
    for (const auto &g : avg)
      for (float x : g) ss += static_cast<double>(x) * grad_scale * (static_cast<double>(x) * grad_scale);
    const double norm = std::sqrt(ss);
    const StepResult r = opt.step(grad_scale);
    ASSERT_FALSE(r.skipped);
    EXPECT_NEAR(r.grad_norm, norm, 1e-12 * norm);
    const double coef = std::min(1.0, cfg.max_grad_norm / (norm + 1e-6));
    EXPECT_NEAR(r.clip_coef, coef, 1e-12);
    EXPECT_LT(coef, 1.0);
    const float mult = static_cast<float>(grad_scale * coef);
    for (size_t t = 0; t < model.size(); ++t) {
      std::vector<float> g = avg[t];
      for (float &x : g) x *= mult;
      adam[t].step(ref_p[t], g);
    }
  }
  for (size_t t = 0; t < model.size(); ++t)
    for (size_t i = 0; i < model[t].spec.count; ++i)
      ASSERT_TRUE(close_rel(model[t].get(model[t].param, i), ref_p[t][i], 1e-6))
          << model[t].spec.name << "[" << i << "]";
}

TEST(ShardedSkip, InfOrNaNOnOneRankSkipsTheStepOnEveryRank) {
  const int n = dp().size(), rank = dp().rank();
  auto model = make_model(5, 9, {DType::BF16, DType::F32});
  OptimizerConfig cfg;
  cfg.check_finite = true;
  cfg.bucket_cap_bytes = 2048;
  ShardedOptimizer opt(dp(), {}, bind(model), cfg);
  fill_grads(model, 5, rank, n, 1);
  ASSERT_FALSE(opt.step().skipped);
  const float bads[] = {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                        -std::numeric_limits<float>::infinity()};
  for (int k = 0; k < 3; ++k) {
    fill_grads(model, 5, rank, n, 2 + k);
    // The last rank poisons one element of the largest tensor: whoever
    // owns that element sees it after the reduce-scatter; all must skip.
    size_t big = 0;
    for (size_t t = 0; t < model.size(); ++t)
      if (model[t].spec.count > model[big].spec.count) big = t;
    if (rank == n - 1) model[big].set(model[big].grad, model[big].spec.count / 2 + static_cast<size_t>(k), bads[k]);
    const auto before = model;
    std::vector<float> master_before(opt.state("master"), opt.state("master") + opt.layout().shard_elems());
    const StepResult r = opt.step();
    EXPECT_TRUE(r.skipped) << "rank " << rank << " did not skip";
    EXPECT_FALSE(std::isfinite(r.grad_norm));
    EXPECT_EQ(opt.step_count(), 1);
    for (size_t t = 0; t < model.size(); ++t) EXPECT_EQ(model[t].param, before[t].param);
    EXPECT_TRUE(std::equal(master_before.begin(), master_before.end(), opt.state("master")));
  }
  fill_grads(model, 5, rank, n, 9);
  EXPECT_FALSE(opt.step().skipped);
  EXPECT_EQ(opt.step_count(), 2);
}

TEST(ShardedState, ExportImportContinuesIdentically) {
  const int n = dp().size(), rank = dp().rank();
  auto model = make_model(11, 10, {DType::BF16, DType::F32});
  OptimizerConfig cfg;
  cfg.bucket_cap_bytes = 4000;
  ShardedOptimizer a(dp(), {}, bind(model), cfg);
  for (int s = 1; s <= 3; ++s) {
    fill_grads(model, 11, rank, n, s);
    a.step();
  }
  // The master shard maps back onto the model through the pieces.
  const float *master = a.state("master");
  for (const Piece &p : a.layout().pieces(rank))
    for (size_t k = 0; k < p.length; ++k)
      ASSERT_EQ(round_to(model[p.tensor].spec.dtype, master[p.shard_offset + k]),
                model[p.tensor].get(model[p.tensor].param, p.tensor_offset + k));

  // A second optimizer over a scrambled copy of the model, loaded with a's
  // state, restores the model and then steps exactly like a.
  auto model_b = model;
  for (auto &t : model_b)
    for (size_t i = 0; i < t.spec.count; ++i) t.set(t.param, i, 42.0f);
  ShardedOptimizer b(dp(), {}, bind(model_b), cfg);
  ASSERT_EQ(a.state_names(), b.state_names());
  for (const std::string &s : a.state_names())
    std::copy(a.state(s), a.state(s) + a.layout().shard_elems(), b.state(s));
  b.set_step_count(a.step_count());
  b.gather_params();
  for (size_t t = 0; t < model.size(); ++t) ASSERT_EQ(model_b[t].param, model[t].param);
  for (int s = 4; s <= 5; ++s) {
    fill_grads(model, 11, rank, n, s);
    fill_grads(model_b, 11, rank, n, s);
    a.step();
    b.step();
  }
  for (size_t t = 0; t < model.size(); ++t) EXPECT_EQ(model_b[t].param, model[t].param);
  EXPECT_THROW(a.state("momentum_buffer"), Error);
}

void expect_invalid_everywhere(const std::function<void()> &f, const std::string &needle_here) {
  try {
    f();
    ADD_FAILURE() << "no error on rank " << dp().rank();
  } catch (const Error &e) {
    EXPECT_EQ(e.status(), Status::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle_here), std::string::npos)
        << "rank " << dp().rank() << ": " << e.what();
  }
}

TEST(ShardedErrors, MismatchedTensorListsAreNamedOnEveryRank) {
  const int n = dp().size(), rank = dp().rank();
  auto model = make_model(3, 6, {DType::F32});
  if (n == 1) {
    // One rank cannot disagree with itself: the same list is accepted.
    ShardedOptimizer ok(dp(), {}, bind(model), {});
    EXPECT_EQ(ok.layout().group_size(), 1);
    return;
  }
  // The last rank's tensor #4 has one element more.
  auto b = bind(model);
  std::vector<float> bigger(b[4].spec.count + 1, 0.0f);
  if (rank == n - 1) {
    b[4].spec.count += 1;
    b[4].param = bigger.data();
    b[4].grad = bigger.data();
  }
  expect_invalid_everywhere([&] { ShardedOptimizer o(dp(), {}, b, {}); },
                            rank == n - 1 ? "tensor #4 is 'block1.p1'" : "different tensor lists");
  // Different settings with the same tensors.
  OptimizerConfig cfg;
  if (rank == 0) cfg.max_grad_norm = 1.0;
  expect_invalid_everywhere([&] { ShardedOptimizer o(dp(), {}, bind(model), cfg); },
                            "different settings");
  // The group still works afterwards: nothing was left half-matched.
  ShardedOptimizer ok(dp(), {}, bind(model), {});
  fill_grads(model, 3, rank, n, 1);
  EXPECT_FALSE(ok.step().skipped);
}

TEST(ShardedErrors, BadArgumentsOnOneRankFailEveryRank) {
  const int n = dp().size(), rank = dp().rank();
  auto model = make_model(4, 5, {DType::F32});
  auto b = bind(model);
  if (rank == n - 1) b[1].grad = nullptr;
  expect_invalid_everywhere([&] { ShardedOptimizer o(dp(), {}, b, {}); },
                            rank == n - 1 ? "NULL gradient pointer" : "rejected their arguments");
  OptimizerConfig cfg;
  if (rank == 0) cfg.adamw.beta1 = 1.5;
  expect_invalid_everywhere([&] { ShardedOptimizer o(dp(), {}, bind(model), cfg); },
                            rank == 0 ? "beta1" : "rejected their arguments");
  std::vector<TensorBinding> ints = {{{"ids", 4, DType::I32}, model[0].param.data(), model[0].grad.data(), true}};
  expect_invalid_everywhere([&] { ShardedOptimizer o(dp(), {}, ints, {}); }, "dtype I32");
  ShardedOptimizer ok(dp(), {}, bind(model), {});
  EXPECT_THROW(ok.step(0.0), Error);
  EXPECT_THROW(ok.set_lr(-1), Error);
}

}  // namespace
}  // namespace smp::optim::testing

SMP_OPTIM_MPI_MAIN
