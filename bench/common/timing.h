// Timing shared by the benchmarks: every figure in BENCHMARKS.md is a
// median of repetitions on the monotonic clock.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace smp::bench {

// Seconds on the monotonic clock.
inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The median of v (the upper of the two middle values for an even count).
inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace smp::bench
