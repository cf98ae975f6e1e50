// Independent reference for the collective tests: every rank can generate
// any rank's input from (world rank, seed, index), and computes the
// expected result in double precision (exact for the small integers used),
// rounding once into the element type. It shares no code with the library
// except the float16/bfloat16 conversions of src/common/dtype.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "smp/smp.h"

namespace smp::test {

inline size_t esize(smp_dtype_t t) { return dtype_size(static_cast<DType>(t)); }

// Input value of element i on world rank w: small integers, so that every
// sum and product the tests form is exact in float32 and double (and the
// result in any order is the same), and PROD stays small.
inline double input_value(int w, uint32_t seed, size_t i, smp_op_t op, smp_dtype_t t) {
  const uint64_t h = (static_cast<uint64_t>(w) * 2654435761u + seed * 40503u + i * 2246822519u) >> 7;
  const bool is_unsigned = t == SMP_UINT8;
  if (op == SMP_PROD) {
    static const int kProd[8] = {1, -1, 2, 1, -2, 1, 3, 1};
    const int v = kProd[h % 8];
    return is_unsigned ? std::abs(v) : v;
  }
  const int v = static_cast<int>(h % 17) - 8;  // -8..8
  return is_unsigned ? v + 8 : v;
}

// Stores v (exactly representable or rounded once) as a t element.
inline void store(void *p, size_t i, smp_dtype_t t, double v) {
  switch (t) {
    case SMP_FLOAT32: static_cast<float *>(p)[i] = static_cast<float>(v); break;
    case SMP_FLOAT64: static_cast<double *>(p)[i] = v; break;
    case SMP_FLOAT16: static_cast<uint16_t *>(p)[i] = float_to_f16(static_cast<float>(v)); break;
    case SMP_BFLOAT16: static_cast<uint16_t *>(p)[i] = float_to_bf16(static_cast<float>(v)); break;
    // Integer results wrap like the library documents (two's complement).
    case SMP_INT8: static_cast<int8_t *>(p)[i] = static_cast<int8_t>(static_cast<int64_t>(v)); break;
    case SMP_UINT8: static_cast<uint8_t *>(p)[i] = static_cast<uint8_t>(static_cast<int64_t>(v)); break;
    case SMP_INT32: static_cast<int32_t *>(p)[i] = static_cast<int32_t>(static_cast<int64_t>(v)); break;
    case SMP_INT64: static_cast<int64_t *>(p)[i] = static_cast<int64_t>(v); break;
  }
}

inline double load(const void *p, size_t i, smp_dtype_t t) {
  switch (t) {
    case SMP_FLOAT32: return static_cast<const float *>(p)[i];
    case SMP_FLOAT64: return static_cast<const double *>(p)[i];
    case SMP_FLOAT16: return f16_to_float(static_cast<const uint16_t *>(p)[i]);
    case SMP_BFLOAT16: return bf16_to_float(static_cast<const uint16_t *>(p)[i]);
    case SMP_INT8: return static_cast<const int8_t *>(p)[i];
    case SMP_UINT8: return static_cast<const uint8_t *>(p)[i];
    case SMP_INT32: return static_cast<const int32_t *>(p)[i];
    case SMP_INT64: return static_cast<double>(static_cast<const int64_t *>(p)[i]);
  }
  return NAN;
}

inline bool is_float(smp_dtype_t t) { return t == SMP_FLOAT32 || t == SMP_FLOAT64 || t == SMP_FLOAT16 || t == SMP_BFLOAT16; }

// The reduction of `values` (one per rank, in group order) as smp.h
// defines it, returned as the double value of the stored result.
inline double reduce_ref(const std::vector<double> &values, smp_op_t op, smp_dtype_t t) {
  double acc = values[0];
  for (size_t k = 1; k < values.size(); ++k) {
    const double x = values[k];
    switch (op) {
      case SMP_SUM: case SMP_AVG: acc += x; break;
      case SMP_PROD: acc *= x; break;
      case SMP_MAX: acc = x > acc ? x : acc; break;
      case SMP_MIN: acc = x < acc ? x : acc; break;
    }
  }
  uint64_t tmp[1];
  const int n = static_cast<int>(values.size());
  if (op == SMP_AVG) {
    if (t == SMP_FLOAT64) return acc / n;
    if (is_float(t)) {
      // float32 arithmetic (the half types accumulate in float32), then one rounding.
      store(tmp, 0, t, static_cast<double>(static_cast<float>(acc) / static_cast<float>(n)));
      return load(tmp, 0, t);
    }
    store(tmp, 0, t, acc);  // the wrapped integer sum
    const int64_t s = static_cast<int64_t>(load(tmp, 0, t));
    return static_cast<double>(s / n);  // C truncation
  }
  store(tmp, 0, t, acc);
  return load(tmp, 0, t);
}

// A buffer of n elements of t, filled with a byte pattern no result has.
struct Buf {
  std::vector<unsigned char> bytes;
  smp_dtype_t t;
  Buf(size_t n, smp_dtype_t type) : bytes(n * esize(type) + 1, 0xA5), t(type) {}
  void *data() { return bytes.data(); }
  double at(size_t i) const { return load(bytes.data(), i, t); }
  void set(size_t i, double v) { store(bytes.data(), i, t, v); }
};

inline std::string dtype_label(smp_dtype_t t) { return dtype_name(static_cast<DType>(t)); }
inline std::string op_label(smp_op_t op) {
  static const char *n[] = {"SUM", "AVG", "MAX", "MIN", "PROD"};
  return n[op];
}

}  // namespace smp::test
