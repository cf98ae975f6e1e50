// The local reduction kernels against scalar arithmetic written out here:
// every dtype x op, aliasing (in place), float32 accumulation of the half
// types with a single rounding, integer wrap-around and AVG truncation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "comm/reduce.h"

namespace smp::comm {
namespace {

template <class T> T apply(ReduceOp op, T a, T b) {
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::Avg: return static_cast<T>(a + b);
    case ReduceOp::Prod: return static_cast<T>(a * b);
    case ReduceOp::Max: return a > b ? a : b;
    case ReduceOp::Min: return a < b ? a : b;
  }
  return a;
}

// The library's float operators, written out: MAX / MIN keep the first
// operand unless the second compares larger / smaller (a NaN first stays).
float apply_float(ReduceOp op, float a, float b) {
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::Avg: return a + b;
    case ReduceOp::Prod: return a * b;
    case ReduceOp::Max: return a < b ? b : a;
    case ReduceOp::Min: return b < a ? b : a;
  }
  return a;
}

const ReduceOp kOps[] = {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod};

template <class T> void check_type(DType t) {
  const size_t n = 1031;  // not a multiple of any vector width
  std::vector<T> a(n), b(n), c(n);
  for (size_t i = 0; i < n; ++i) {
    a[i] = static_cast<T>(static_cast<int>(i % 11) - 5);
    b[i] = static_cast<T>(static_cast<int>((i * 7) % 13) - 6);
    c[i] = static_cast<T>(static_cast<int>((i * 3) % 5) - 2);
  }
  if (std::is_unsigned_v<T>)
    for (size_t i = 0; i < n; ++i) { a[i] = static_cast<T>(i % 11); b[i] = static_cast<T>(i % 13); c[i] = static_cast<T>(i % 5); }
  for (ReduceOp op : kOps) {
    std::vector<T> acc(n), out(n);
    reduce_first(acc.data(), a.data(), b.data(), n, t, op);
    reduce_accumulate(acc.data(), c.data(), n, t, op);
    reduce_finish(out.data(), acc.data(), n, t, op, 3);
    for (size_t i = 0; i < n; ++i) {
      T want = apply(op, apply(op, a[i], b[i]), c[i]);
      if (op == ReduceOp::Avg) {
        if constexpr (std::is_integral_v<T>) want = static_cast<T>(static_cast<int64_t>(want) / 3);
        else want = want / static_cast<T>(3);
      }
      ASSERT_EQ(out[i], want) << dtype_name(t) << " " << reduce_op_name(op) << " element " << i;
    }
    // In place: acc aliasing the first input.
    std::vector<T> x = a;
    reduce_first(x.data(), x.data(), b.data(), n, t, op);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], apply(op, a[i], b[i]));
  }
}

TEST(Reduce, EveryNativeTypeAndOp) {
  check_type<float>(DType::F32);
  check_type<double>(DType::F64);
  check_type<int8_t>(DType::I8);
  check_type<uint8_t>(DType::U8);
  check_type<int32_t>(DType::I32);
  check_type<int64_t>(DType::I64);
}

TEST(Reduce, IntegerSumAndProdWrap) {
  int32_t a[2] = {std::numeric_limits<int32_t>::max(), 1 << 20}, b[2] = {1, 1 << 12}, out[2];
  reduce_first(out, a, b, 2, DType::I32, ReduceOp::Sum);
  EXPECT_EQ(out[0], std::numeric_limits<int32_t>::min());
  reduce_first(out, a, b, 2, DType::I32, ReduceOp::Prod);
  EXPECT_EQ(out[1], 0);  // 2^32 wraps to 0
  uint8_t u[1] = {200}, v[1] = {100}, w[1];
  reduce_first(w, u, v, 1, DType::U8, ReduceOp::Sum);
  EXPECT_EQ(w[0], 44);
}

TEST(Reduce, IntegerAvgTruncatesTowardZero) {
  int32_t a[3] = {-7, 7, -1}, b[3] = {0, 0, 0}, acc[3], out[3];
  reduce_first(acc, a, b, 3, DType::I32, ReduceOp::Avg);
  reduce_finish(out, acc, 3, DType::I32, ReduceOp::Avg, 2);
  EXPECT_EQ(out[0], -3);
  EXPECT_EQ(out[1], 3);
  EXPECT_EQ(out[2], 0);
  int8_t c[1] = {100}, d[1] = {100}, e[1];
  reduce_first(e, c, d, 1, DType::I8, ReduceOp::Avg);  // wraps to -56 first, as documented
  reduce_finish(e, e, 1, DType::I8, ReduceOp::Avg, 200);
  EXPECT_EQ(e[0], 0);
}

// bfloat16 / float16: the sum is kept in float32 and rounded once. 256 +
// 1 + 1 in bfloat16 steps would stay 256 (bf16 has 8 significant bits);
// with float32 accumulation it is 258, which bf16 represents exactly.
TEST(Reduce, HalfTypesAccumulateInFloat32AndRoundOnce) {
  for (DType t : {DType::BF16, DType::F16}) {
    auto to = [&](float f) { return t == DType::BF16 ? float_to_bf16(f) : float_to_f16(f); };
    auto from = [&](uint16_t h) { return t == DType::BF16 ? bf16_to_float(h) : f16_to_float(h); };
    const float big = t == DType::BF16 ? 256.0f : 2048.0f;  // 1 ulp = 2 at this magnitude
    uint16_t a[1] = {to(big)}, b[1] = {to(1.0f)}, c[1] = {to(1.0f)}, out[1];
    float acc[1];
    reduce_first(acc, a, b, 1, t, ReduceOp::Sum);
    reduce_accumulate(acc, c, 1, t, ReduceOp::Sum);
    reduce_finish(out, acc, 1, t, ReduceOp::Sum, 3);
    EXPECT_EQ(from(out[0]), big + 2) << dtype_name(t);
    // AVG divides in float32 before the one rounding: (1 + 2) / 2 = 1.5.
    uint16_t x[1] = {to(1.0f)}, y[1] = {to(2.0f)};
    reduce_first(acc, x, y, 1, t, ReduceOp::Avg);
    reduce_finish(out, acc, 1, t, ReduceOp::Avg, 2);
    EXPECT_EQ(from(out[0]), 1.5f) << dtype_name(t);
    // MAX / MIN / PROD on a longer array, against float arithmetic.
    const size_t n = 301;
    std::vector<uint16_t> p(n), q(n), r(n);
    std::vector<float> wide(n);
    for (size_t i = 0; i < n; ++i) { p[i] = to(static_cast<float>(i % 9) - 4); q[i] = to(static_cast<float>(i % 7) * 0.5f); }
    for (ReduceOp op : {ReduceOp::Max, ReduceOp::Min, ReduceOp::Prod}) {
      reduce_first(wide.data(), p.data(), q.data(), n, t, op);
      reduce_finish(r.data(), wide.data(), n, t, op, 2);
      for (size_t i = 0; i < n; ++i)
        ASSERT_EQ(from(r[i]), from(to(apply(op, from(p[i]), from(q[i]))))) << reduce_op_name(op) << " " << i;
    }
  }
}

// The half paths convert blocks at a time (common/half.h: F16C for
// float16 on this CPU): bit for bit the scalar conversions around float32
// arithmetic, on lengths that leave odd tails and cross blocks, over every
// kind of value (subnormals, infinities, a NaN in the first input).
TEST(Reduce, HalfTypesBitIdenticalToScalarOnOddLengths) {
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  for (DType t : {DType::F16, DType::BF16}) {
    auto to = [&](float f) { return t == DType::BF16 ? float_to_bf16(f) : float_to_f16(f); };
    auto from = [&](uint16_t h) { return t == DType::BF16 ? bf16_to_float(h) : f16_to_float(h); };
    auto is_nan = [&](uint16_t h) { return std::isnan(from(h)); };
    for (size_t n : {size_t{1}, size_t{7}, size_t{9}, size_t{511}, size_t{513}, size_t{1031}, size_t{2053}}) {
      std::vector<uint16_t> a(n), b(n), c(n), out(n), want(n);
      for (size_t i = 0; i < n; ++i) {
        a[i] = static_cast<uint16_t>(next() >> 16);
        do b[i] = static_cast<uint16_t>(next() >> 16); while (is_nan(b[i]));
        do c[i] = static_cast<uint16_t>(next() >> 16); while (is_nan(c[i]));
      }
      for (ReduceOp op : kOps) {
        std::vector<float> acc(n);
        reduce_first(acc.data(), a.data(), b.data(), n, t, op);
        reduce_accumulate(acc.data(), c.data(), n, t, op);
        reduce_finish(out.data(), acc.data(), n, t, op, 3);
        for (size_t i = 0; i < n; ++i) {
          float w = apply_float(op, apply_float(op, from(a[i]), from(b[i])), from(c[i]));
          if (op == ReduceOp::Avg) w = w / 3.0f;
          want[i] = to(w);
        }
        for (size_t i = 0; i < n; ++i)
          ASSERT_EQ(out[i], want[i]) << dtype_name(t) << " " << reduce_op_name(op) << " n=" << n << " element " << i;
        std::vector<uint16_t> d = a;
        divide_in_place(d.data(), n, t, 3);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(d[i], to(from(a[i]) / 3.0f)) << dtype_name(t) << " divide " << i;
      }
    }
  }
}

TEST(Reduce, DivideInPlaceAfterAnMpiSum) {
  float f[2] = {3.0f, -3.0f};
  divide_in_place(f, 2, DType::F32, 2);
  EXPECT_EQ(f[0], 1.5f);
  EXPECT_EQ(f[1], -1.5f);
  int64_t i[2] = {-9, 9};
  divide_in_place(i, 2, DType::I64, 4);
  EXPECT_EQ(i[0], -2);
  EXPECT_EQ(i[1], 2);
}

}  // namespace
}  // namespace smp::comm
