// Random inputs whose reductions are exact in every dtype: small multiples
// of 0.75 (and integers), so a SUM, AVG or PROD over a few ranks gives the
// same bytes whatever order the terms are combined in. Tests compare a
// backend's results with the MPI backend's byte for byte on them.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "common/dtype.h"

namespace smp::testing {

inline std::vector<char> exact_inputs(std::mt19937_64 &rng, DType t, size_t n) {
  std::vector<char> b(n * dtype_size(t));
  std::uniform_int_distribution<int> small(-4, 4);
  for (size_t i = 0; i < n; ++i) {
    char *p = b.data() + i * dtype_size(t);
    const int v = small(rng);
    switch (t) {
      case DType::F32: { const float x = v * 0.75f; std::memcpy(p, &x, 4); break; }
      case DType::F64: { const double x = v * 0.75; std::memcpy(p, &x, 8); break; }
      case DType::F16: { const uint16_t x = float_to_f16(v * 0.75f); std::memcpy(p, &x, 2); break; }
      case DType::BF16: { const uint16_t x = float_to_bf16(v * 0.75f); std::memcpy(p, &x, 2); break; }
      case DType::I8: case DType::U8: { const int8_t x = static_cast<int8_t>(v); std::memcpy(p, &x, 1); break; }
      case DType::I32: { const int32_t x = v * 1000; std::memcpy(p, &x, 4); break; }
      case DType::I64: { const int64_t x = static_cast<int64_t>(v) * (int64_t{1} << 35); std::memcpy(p, &x, 8); break; }
    }
  }
  return b;
}

}  // namespace smp::testing
