// One line of a benchmark's JSON output (bench.jsonl, read by gpu_table.py
// and the sweeps): keys in the order given, numbers rounded to the digits
// the tables show.
#pragma once

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace bench {

using JsonRow = nlohmann::ordered_json;

// x with n decimals, as printf's "%.nf" showed it.
inline double decimals(double x, int n) {
  const double scale = std::pow(10.0, n);
  return std::round(x * scale) / scale;
}

// x as printf's "%g" showed it: a whole number without a fraction (so
// that the tables print 64, not 64.0).
inline JsonRow general(double x) {
  if (std::fabs(x) < 1e15 && x == std::floor(x)) return static_cast<long long>(x);
  return x;
}

// The row on stdout, flushed: rows printed before a timeout still count.
inline void print_row(const JsonRow &row) {
  std::printf("%s\n", row.dump().c_str());
  std::fflush(stdout);
}

}  // namespace bench
