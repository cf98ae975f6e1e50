// Automated partitioning (SageMaker's auto_partition, for an ordered list of
// layers): cut the layers into pp contiguous, non-empty stages so that the
// most expensive stage is as cheap as possible, subject to a per-device
// memory limit. Exact: dynamic programming over (stages, prefix), O(pp n^2).
//
// Cost (SageMaker's mix): cost = memory_weight * mem_normalized
//                              + (1 - memory_weight) * compute_normalized,
// where each term is normalized by the whole model's total, so a stage's
// mem_normalized is the fraction of all memory it holds and its
// compute_normalized the fraction of all compute time it runs; a perfectly
// balanced split costs 1/pp. A model with zero total compute uses the layer
// count instead (SageMaker counts modules when it has no times); one with
// zero total memory contributes 0 to the memory term.
#pragma once

#include <cstddef>
#include <vector>

namespace smp::pipeline {

struct Layer {
  double compute = 0;  // time (or any compute measure) of the layer, >= 0
  double memory = 0;   // bytes it needs on its device: parameters (+ gradients and
                       // optimizer state, as the caller counts them) + activations
};

struct StageInfo {
  size_t first = 0;    // index of the stage's first layer
  size_t count = 0;    // number of layers
  double compute = 0;  // sum of the layers' compute
  double memory = 0;   // sum of the layers' memory
  double cost = 0;     // the mixed, normalized cost above
};

struct Partition {
  std::vector<StageInfo> stages;
  double max_cost = 0;  // the objective: the most expensive stage's cost
};

// memory_limit <= 0 means no limit. Throws InvalidArgument for bad input
// (pp < 1, fewer layers than stages, memory_weight outside [0, 1], negative
// or non-finite numbers) and when no split fits in memory_limit, saying how
// much the best split would need.
Partition partition(const std::vector<Layer> &layers, int pp, double memory_weight,
                    double memory_limit);

// The normalized cost of each layer (a stage's cost is their sum).
std::vector<double> layer_costs(const std::vector<Layer> &layers, double memory_weight);

}  // namespace smp::pipeline
