// common/half.h: the array conversions give the scalar conversions' bits
// (common/dtype.h) on every float16 and bfloat16 value, on rounding ties,
// overflow, subnormals and NaN payloads, at lengths with odd tails; the
// F16C path itself is compared where the CPU has it, the scalar fallback
// everywhere.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/half.h"

namespace smp::half {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<uint16_t> every_half() {
  std::vector<uint16_t> h(65536);
  for (uint32_t i = 0; i < 65536; ++i) h[i] = static_cast<uint16_t>(i);
  return h;
}

// Floats that exercise float -> half: every half's value, the midpoints
// between neighbours (ties round to even), one float ulp either side,
// values around the overflow threshold and below the smallest subnormal,
// NaNs with payloads, and pseudo-random bit patterns.
std::vector<float> hard_floats() {
  std::vector<float> f;
  for (uint32_t i = 0; i < 65536; ++i) {
    const float v = f16_to_float(static_cast<uint16_t>(i));
    f.push_back(v);
    const uint32_t u = bits(v);
    f.push_back(from_bits(u + 1));
    f.push_back(from_bits(u - 1));
    if ((i & 0x7fff) < 0x7bff) {
      const float next = f16_to_float(static_cast<uint16_t>(i + 1));
      f.push_back((v + next) / 2);
    }
  }
  for (float v : {65504.0f, 65519.99f, 65520.0f, 65536.0f, 1e-8f, 2.98e-8f, 2.9802322e-8f, 1e-40f, -1e-40f})
    f.push_back(v), f.push_back(-v);
  for (uint32_t payload : {0x7fc00000u, 0x7f800001u, 0x7fa5a5a5u, 0xffc00001u, 0xff812345u})
    f.push_back(from_bits(payload));
  uint32_t s = 7;
  for (int i = 0; i < 200000; ++i) f.push_back(from_bits(s = s * 1664525u + 1013904223u));
  return f;
}

template <class Conv, class Ref, class In, class Out>
void expect_same(Conv conv, Ref ref, const std::vector<In> &in, const char *what) {
  // Whole array, then slices whose lengths and offsets leave odd tails.
  std::vector<Out> got(in.size()), want(in.size());
  conv(in.data(), got.data(), in.size());
  ref(in.data(), want.data(), in.size());
  ASSERT_EQ(std::memcmp(got.data(), want.data(), in.size() * sizeof(Out)), 0) << what;
  for (size_t off : {size_t{1}, size_t{3}, size_t{8}}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{9}, size_t{15}, size_t{17}, size_t{1001}}) {
      std::vector<Out> g(n + 1, 0xab), w(n + 1, 0xab);
      conv(in.data() + off, g.data(), n);
      ref(in.data() + off, w.data(), n);
      ASSERT_EQ(std::memcmp(g.data(), w.data(), (n + 1) * sizeof(Out)), 0) << what << " n=" << n << " off=" << off;
    }
  }
}

TEST(Half, F16ToFloatMatchesScalar) {
  const auto h = every_half();
  expect_same<decltype(&f16_to_float_n), decltype(&f16_to_float_scalar), uint16_t, float>(
      f16_to_float_n, f16_to_float_scalar, h, "f16_to_float_n");
  // The scalar path is what it says: dtype.h's conversion.
  std::vector<float> out(h.size());
  f16_to_float_scalar(h.data(), out.data(), h.size());
  for (size_t i = 0; i < h.size(); ++i) ASSERT_EQ(bits(out[i]), bits(f16_to_float(h[i]))) << i;
}

TEST(Half, FloatToF16MatchesScalar) {
  const auto f = hard_floats();
  expect_same<decltype(&float_to_f16_n), decltype(&float_to_f16_scalar), float, uint16_t>(
      float_to_f16_n, float_to_f16_scalar, f, "float_to_f16_n");
  std::vector<uint16_t> out(f.size());
  float_to_f16_scalar(f.data(), out.data(), f.size());
  for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(out[i], float_to_f16(f[i])) << i;
}

#if SMP_HALF_F16C
// The vector path by name, where this CPU has it (every x86 CPU since 2012;
// the dispatch above took it there too).
TEST(Half, F16cPathMatchesScalar) {
  if (!has_f16c()) {
    EXPECT_FALSE(__builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx"));
    return;
  }
  const auto h = every_half();
  expect_same<decltype(&f16_to_float_f16c), decltype(&f16_to_float_scalar), uint16_t, float>(
      f16_to_float_f16c, f16_to_float_scalar, h, "f16_to_float_f16c");
  const auto f = hard_floats();
  expect_same<decltype(&float_to_f16_f16c), decltype(&float_to_f16_scalar), float, uint16_t>(
      float_to_f16_f16c, float_to_f16_scalar, f, "float_to_f16_f16c");
}
#endif

TEST(Half, Bf16MatchesScalar) {
  const auto h = every_half();
  std::vector<float> wide(h.size());
  bf16_to_float_n(h.data(), wide.data(), h.size());
  for (size_t i = 0; i < h.size(); ++i) ASSERT_EQ(bits(wide[i]), bits(bf16_to_float(h[i]))) << i;
  const auto f = hard_floats();
  std::vector<uint16_t> narrow(f.size());
  float_to_bf16_n(f.data(), narrow.data(), f.size());
  for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(narrow[i], float_to_bf16(f[i])) << i;
}

}  // namespace
}  // namespace smp::half
