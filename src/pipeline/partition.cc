#include "pipeline/partition.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "common/error.h"

namespace smp::pipeline {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_input(const std::vector<Layer> &layers, int pp, double memory_weight, double memory_limit) {
  if (pp < 1) invalid("partition: pp must be >= 1, got " + std::to_string(pp));
  if (layers.empty()) invalid("partition: no layers");
  if (layers.size() < static_cast<size_t>(pp))
    invalid("partition: cannot split " + std::to_string(layers.size()) + " layers into " +
            std::to_string(pp) + " non-empty stages");
  if (!(memory_weight >= 0 && memory_weight <= 1))
    invalid("partition: memory_weight must be in [0, 1], got " + std::to_string(memory_weight));
  if (std::isnan(memory_limit) || std::isinf(memory_limit))
    invalid("partition: memory_limit must be finite (<= 0 for none)");
  for (size_t i = 0; i < layers.size(); ++i)
    if (!(layers[i].compute >= 0 && std::isfinite(layers[i].compute) && layers[i].memory >= 0 &&
          std::isfinite(layers[i].memory)))
      invalid("partition: layer " + std::to_string(i) +
              " has a negative or non-finite compute or memory");
}

// The smallest possible memory of the fullest stage (min over splits of the
// max stage memory): what the error message reports when nothing fits.
double min_max_memory(const std::vector<double> &pre, size_t n, int pp) {
  std::vector<double> prev(n + 1, kInf), cur(n + 1, kInf);
  for (size_t j = 1; j <= n; ++j) prev[j] = pre[j];
  for (int k = 2; k <= pp; ++k) {
    std::fill(cur.begin(), cur.end(), kInf);
    for (size_t j = k; j <= n; ++j)
      for (size_t i = k - 1; i < j; ++i) cur[j] = std::min(cur[j], std::max(prev[i], pre[j] - pre[i]));
    std::swap(prev, cur);
  }
  return prev[n];
}

}  // namespace

std::vector<double> layer_costs(const std::vector<Layer> &layers, double memory_weight) {
  double total_compute = 0, total_memory = 0;
  for (const Layer &l : layers) {
    total_compute += l.compute;
    total_memory += l.memory;
  }
  const double n = static_cast<double>(layers.size());
  std::vector<double> out;
  out.reserve(layers.size());
  for (const Layer &l : layers) {
    const double comp = total_compute > 0 ? l.compute / total_compute : 1.0 / n;
    const double mem = total_memory > 0 ? l.memory / total_memory : 0.0;
    out.push_back(memory_weight * mem + (1 - memory_weight) * comp);
  }
  return out;
}

Partition partition(const std::vector<Layer> &layers, int pp, double memory_weight, double memory_limit) {
  check_input(layers, pp, memory_weight, memory_limit);
  const size_t n = layers.size();
  const std::vector<double> cost = layer_costs(layers, memory_weight);
  std::vector<double> pre_cost(n + 1, 0), pre_mem(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    pre_cost[i + 1] = pre_cost[i] + cost[i];
    pre_mem[i + 1] = pre_mem[i] + layers[i].memory;
  }
  const bool limited = memory_limit > 0;
  auto fits = [&](size_t i, size_t j) { return !limited || pre_mem[j] - pre_mem[i] <= memory_limit; };

  // best[k][j]: the least max-stage cost splitting layers [0, j) into k
  // stages; from[k][j]: where the k-th stage starts in that split.
  std::vector<std::vector<double>> best(pp + 1, std::vector<double>(n + 1, kInf));
  std::vector<std::vector<size_t>> from(pp + 1, std::vector<size_t>(n + 1, 0));
  for (size_t j = 1; j <= n; ++j)
    if (fits(0, j)) best[1][j] = pre_cost[j];
  for (int k = 2; k <= pp; ++k)
    for (size_t j = k; j <= n; ++j)
      for (size_t i = k - 1; i < j; ++i) {
        if (best[k - 1][i] == kInf || !fits(i, j)) continue;
        const double c = std::max(best[k - 1][i], pre_cost[j] - pre_cost[i]);
        if (c < best[k][j]) {
          best[k][j] = c;
          from[k][j] = i;
        }
      }

  if (best[pp][n] == kInf) {
    std::ostringstream msg;
    for (size_t i = 0; i < n; ++i)
      if (layers[i].memory > memory_limit) {
        msg << "partition: layer " << i << " alone needs " << layers[i].memory
            << " bytes, more than the memory limit of " << memory_limit << " bytes per device";
        invalid(msg.str());
      }
    msg << "partition: no split of " << n << " layers into " << pp << " stages fits in "
        << memory_limit << " bytes per device; the best split needs "
        << min_max_memory(pre_mem, n, pp) << " bytes on its fullest stage";
    invalid(msg.str());
  }

  Partition out;
  out.stages.resize(pp);
  size_t j = n;
  for (int k = pp; k >= 1; --k) {
    const size_t i = k == 1 ? 0 : from[k][j];
    StageInfo &st = out.stages[k - 1];
    st.first = i;
    st.count = j - i;
    // Sum directly (not from the prefix sums) so reported numbers carry no
    // cancellation error.
    for (size_t l = i; l < j; ++l) {
      st.compute += layers[l].compute;
      st.memory += layers[l].memory;
      st.cost += cost[l];
    }
    out.max_cost = std::max(out.max_cost, st.cost);
    j = i;
  }
  return out;
}

}  // namespace smp::pipeline
