// The partitioner against brute force: every way of cutting n <= 10 layers
// into pp contiguous non-empty stages, on random instances with and without
// a memory limit; optimal costs must agree, and inputs with no feasible
// split must fail with the brute force's own verdict.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "pipeline/partition.h"

using namespace smp::pipeline;

namespace {

// Cost of layers [i, j) straight from the definition (not layer_costs).
double stage_cost(const std::vector<Layer> &l, size_t i, size_t j, double w) {
  double c = 0, m = 0, tc = 0, tm = 0;
  for (const Layer &x : l) {
    tc += x.compute;
    tm += x.memory;
  }
  for (size_t k = i; k < j; ++k) {
    c += l[k].compute;
    m += l[k].memory;
  }
  const double comp = tc > 0 ? c / tc : double(j - i) / l.size();
  const double mem = tm > 0 ? m / tm : 0;
  return w * mem + (1 - w) * comp;
}

struct Best {
  double cost = std::numeric_limits<double>::infinity();
  bool found = false;
  double min_fullest = std::numeric_limits<double>::infinity();
};

Best brute_force(const std::vector<Layer> &l, int pp, double w, double limit) {
  Best best;
  std::vector<size_t> cuts;  // stage starts after the first
  std::function<void(size_t, int)> rec = [&](size_t start, int left) {
    if (left == 1) {
      std::vector<size_t> b{0};
      b.insert(b.end(), cuts.begin(), cuts.end());
      b.push_back(l.size());
      double worst = 0, fullest = 0;
      bool fits = true;
      for (size_t s = 0; s + 1 < b.size(); ++s) {
        double mem = 0;
        for (size_t k = b[s]; k < b[s + 1]; ++k) mem += l[k].memory;
        fullest = std::max(fullest, mem);
        if (limit > 0 && mem > limit) fits = false;
        worst = std::max(worst, stage_cost(l, b[s], b[s + 1], w));
      }
      best.min_fullest = std::min(best.min_fullest, fullest);
      if (fits && worst < best.cost) {
        best.cost = worst;
        best.found = true;
      }
      return;
    }
    for (size_t c = start + 1; c + left - 1 <= l.size(); ++c) {
      cuts.push_back(c);
      rec(c, left - 1);
      cuts.pop_back();
    }
  };
  rec(0, pp);
  return best;
}

}  // namespace


TEST(Partition, MatchesBruteForce) {
  std::mt19937 rng(12345);
  int feasible = 0, infeasible = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    const size_t n = 1 + rng() % 10;
    const int pp = 1 + static_cast<int>(rng() % std::min<size_t>(n, 5));
    std::vector<Layer> layers(n);
    for (Layer &x : layers) {
      x.compute = (rng() % 4 == 0) ? 0.0 : double(rng() % 1000) / 10.0;
      x.memory = double(rng() % 100);  // whole bytes: sums are exact
    }
    if (trial % 50 == 0)
      for (Layer &x : layers) x.compute = 0;  // falls back to layer counts
    const double w = (trial % 5) / 4.0;
    double total = 0;
    for (const Layer &x : layers) total += x.memory;
    const double limit = trial % 3 == 0 ? 0 : std::max(1.0, total / pp * (0.8 + 0.2 * (trial % 4)));
    const Best ref = brute_force(layers, pp, w, limit);
    if (!ref.found) {
      ++infeasible;
      try {
        partition(layers, pp, w, limit);
        FAIL() << "accepted an infeasible instance, trial " << trial;
      } catch (const smp::Error &e) {
        EXPECT_EQ(e.status(), smp::Status::InvalidArgument);
        const std::string msg = e.what();
        const bool one_layer = std::any_of(layers.begin(), layers.end(),
                                           [&](const Layer &x) { return x.memory > limit; });
        if (one_layer) {
          EXPECT_NE(msg.find("alone needs"), std::string::npos) << msg;
        } else {
          EXPECT_NE(msg.find("needs " + std::to_string(static_cast<long>(ref.min_fullest)) + " bytes"),
                    std::string::npos)
              << msg;
        }
      }
      continue;
    }
    ++feasible;
    const Partition got = partition(layers, pp, w, limit);
    ASSERT_EQ(got.stages.size(), static_cast<size_t>(pp));
    EXPECT_NEAR(got.max_cost, ref.cost, 1e-12) << "trial " << trial;
    size_t next = 0;
    double worst = 0;
    for (const StageInfo &s : got.stages) {
      EXPECT_EQ(s.first, next);
      EXPECT_GE(s.count, 1u);
      next = s.first + s.count;
      double mem = 0, comp = 0;
      for (size_t k = s.first; k < next; ++k) {
        mem += layers[k].memory;
        comp += layers[k].compute;
      }
      EXPECT_EQ(s.memory, mem);
      EXPECT_DOUBLE_EQ(s.compute, comp);
      EXPECT_NEAR(s.cost, stage_cost(layers, s.first, next, w), 1e-12);
      if (limit > 0) {
        EXPECT_LE(s.memory, limit);
      }
      worst = std::max(worst, s.cost);
    }
    EXPECT_EQ(next, n);
    EXPECT_DOUBLE_EQ(worst, got.max_cost);
  }
  EXPECT_GT(feasible, 500);
  EXPECT_GT(infeasible, 20);
}

TEST(Partition, ByHand) {
  // Compute only (memory_weight 0): 4 equal layers and a heavy one.
  std::vector<Layer> l{{1, 0}, {1, 0}, {1, 0}, {1, 0}, {4, 0}};
  Partition p = partition(l, 2, 0.0, 0);
  EXPECT_EQ(p.stages[0].count, 4u);
  EXPECT_EQ(p.stages[1].count, 1u);
  EXPECT_DOUBLE_EQ(p.max_cost, 0.5);
  // Memory only: the split follows memory instead.
  l = {{1, 4}, {1, 1}, {1, 1}, {1, 1}, {1, 1}};
  p = partition(l, 2, 1.0, 0);
  EXPECT_EQ(p.stages[0].count, 1u);
  // A memory limit forces a worse-compute split: 4 bytes per device.
  l = {{10, 3}, {1, 1}, {1, 3}, {1, 1}};
  p = partition(l, 2, 0.0, 4);
  EXPECT_EQ(p.stages[0].count, 2u);  // compute alone would cut after layer 0
  EXPECT_LE(p.stages[1].memory, 4);
}

TEST(Partition, Errors) {
  auto msg = [](const std::vector<Layer> &l, int pp, double w, double lim) {
    try {
      partition(l, pp, w, lim);
    } catch (const smp::Error &e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const std::vector<Layer> l{{1, 10}, {1, 10}, {1, 10}};
  EXPECT_NE(msg(l, 4, 0.5, 0).find("cannot split 3 layers into 4"), std::string::npos);
  EXPECT_NE(msg(l, 0, 0.5, 0).find("pp must be >= 1"), std::string::npos);
  EXPECT_NE(msg(l, 2, 1.5, 0).find("memory_weight"), std::string::npos);
  EXPECT_NE(msg({}, 1, 0.5, 0).find("no layers"), std::string::npos);
  EXPECT_NE(msg({{-1, 0}}, 1, 0.5, 0).find("layer 0"), std::string::npos);
  EXPECT_NE(msg(l, 2, 0.5, 9).find("layer 0 alone needs 10 bytes"), std::string::npos);
  EXPECT_NE(msg(l, 2, 0.5, 15).find("best split needs 20 bytes"), std::string::npos);
}
