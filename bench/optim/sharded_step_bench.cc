// Step time of the ZeRO-1 sharded step (reduce-scatter, update 1/n of the
// state, allgather) against the unsharded data-parallel step (allreduce of
// the whole gradient, every rank updates the whole model), side by side in
// one run, alternating, medians of repetitions. Float32 AdamW. Prints a
// table row: ranks, params, sharded ms, unsharded ms, ratio, then the
// communication alone (reduce-scatter + allgather ms, allreduce ms) and
// the optimizer state per rank, sharded and unsharded.
//
//   mpirun -np N sharded-step-bench [--params 16777216] [--tensors 16] [--reps 7]
//          [--bucket-mb 25]
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
#include "cli.h"
#include "timing.h"

namespace {

using smp::bench::median;
using smp::bench::now;

}  // namespace

int main(int argc, char **argv) {
  size_t params = 16u << 20, ntensors = 16;
  int reps = 7;
  double bucket_mb = 25;
  CLI::App app{"sharded-step-bench: the ZeRO-1 step against the unsharded data-parallel step"};
  app.add_option("--params", params, "float32 parameters in all")->check(CLI::PositiveNumber);
  app.add_option("--tensors", ntensors, "tensors they are split into")->check(CLI::PositiveNumber);
  app.add_option("--reps", reps, "timed repetitions (median)")->check(CLI::PositiveNumber);
  app.add_option("--bucket-mb", bucket_mb, "bucket cap in MiB")->check(CLI::PositiveNumber);
  if (const int rc = smp::bench::parse(app, argc, argv); rc >= 0) return rc;
  using namespace smp;
  comm::Context &ctx = comm::Context::init();
  comm::Communicator &dp = ctx.group(topo::Group::DP);
  const int n = dp.size();

  // The model: ntensors float32 tensors (params and grads), one flat
  // allocation each so the baseline can allreduce a single buffer.
  std::vector<float> param(params), grad(params), base_param(params), base_grad(params);
  for (size_t i = 0; i < params; ++i) {
    param[i] = base_param[i] = 0.001f * static_cast<float>(i % 1000);
    grad[i] = base_grad[i] = 0.0001f * static_cast<float>((i * 7 + static_cast<size_t>(dp.rank())) % 100);
  }
  std::vector<optim::TensorBinding> tensors;
  const size_t per = params / ntensors;
  for (size_t t = 0; t < ntensors; ++t) {
    const size_t off = t * per, cnt = t + 1 == ntensors ? params - off : per;
    tensors.push_back({{"t" + std::to_string(t), cnt, DType::F32}, param.data() + off, grad.data() + off, true});
  }
  optim::OptimizerConfig cfg;
  cfg.bucket_cap_bytes = static_cast<size_t>(bucket_mb * 1048576);
  optim::ShardedOptimizer opt(dp, {}, tensors, cfg);

  // Baseline state: full-size moments on every rank.
  std::vector<float> m(params, 0.0f), v(params, 0.0f), reduced(params);
  optim::AdamWHyper h;
  auto baseline = [&](int64_t step) {
    dp.allreduce(base_grad.data(), reduced.data(), params, DType::F32, comm::ReduceOp::Avg);
    h.step = step;
    optim::adamw_update(base_param.data(), m.data(), v.data(), reduced.data(), nullptr, DType::F32,
                        params, 1.0f, h);
  };

  // The communication alone, for the breakdown: reduce-scatter + allgather
  // of the whole gradient (what the sharded step moves) vs one allreduce.
  std::vector<float> flat(params);
  const size_t slice = params / static_cast<size_t>(n);
  auto rs_ag = [&] {
    dp.reduce_scatter(flat.data(), flat.data() + slice * static_cast<size_t>(dp.rank()), slice,
                      DType::F32, comm::ReduceOp::Avg);
    dp.allgather(flat.data() + slice * static_cast<size_t>(dp.rank()), flat.data(), slice, DType::F32);
  };
  auto ar = [&] { dp.allreduce(flat.data(), flat.data(), slice * static_cast<size_t>(n), DType::F32, comm::ReduceOp::Avg); };

  std::vector<double> ts, tb, trs, tar;
  for (int r = 0; r < reps + 1; ++r) {  // the first round warms up
    dp.barrier();
    double t0 = now();
    opt.step();
    dp.barrier();
    const double sharded = now() - t0;
    t0 = now();
    baseline(r + 1);
    dp.barrier();
    const double unsharded = now() - t0;
    t0 = now();
    rs_ag();
    dp.barrier();
    const double c1 = now() - t0;
    t0 = now();
    ar();
    dp.barrier();
    const double c2 = now() - t0;
    if (r > 0) ts.push_back(sharded), tb.push_back(unsharded), trs.push_back(c1), tar.push_back(c2);
  }
  if (dp.rank() == 0) {
    const double s = median(ts), b = median(tb);
    std::printf("| %d | %zu | %.1f | %.1f | %.2fx | %.1f | %.1f | %.1f MiB | %.1f MiB |\n", n,
                params, s * 1e3, b * 1e3, b / s, median(trs) * 1e3, median(tar) * 1e3,
                opt.state_bytes() / 1048576.0, 3.0 * 4 * params / 1048576.0);
  }
  comm::Context::finalize();
  return 0;
}
