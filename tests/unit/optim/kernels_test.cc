// Fused CPU kernels against the scalar reference (reference_optim.h), on
// odd lengths (vector epilogues) and every dtype, plus sum_squares and the
// dtype conversions.
#include "optim/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "reference_optim.h"

namespace smp::optim {
namespace {

using testing::close_rel;
using testing::RefAdamW;
using testing::RefSgd;

// n values in dtype (as bytes) and their exact float values.
struct Typed {
  std::vector<uint16_t> h;
  std::vector<float> f, as_float;
  const void *ptr(DType d) const { return d == DType::F32 ? static_cast<const void *>(f.data()) : h.data(); }
};

Typed random_typed(std::mt19937_64 &rng, size_t n, DType d, float scale) {
  std::normal_distribution<float> dist(0.0f, scale);
  Typed t;
  for (size_t i = 0; i < n; ++i) {
    float x = dist(rng);
    if (d == DType::BF16) {
      t.h.push_back(float_to_bf16(x));
      x = bf16_to_float(t.h.back());
    } else if (d == DType::F16) {
      t.h.push_back(float_to_f16(x));
      x = f16_to_float(t.h.back());
    }
    t.f.push_back(x);
    t.as_float.push_back(x);
  }
  return t;
}

float round_to(DType d, float x) {
  if (d == DType::BF16) return bf16_to_float(float_to_bf16(x));
  if (d == DType::F16) return f16_to_float(float_to_f16(x));
  return x;
}
float out_at(DType d, const std::vector<uint16_t> &h, const std::vector<float> &f, size_t i) {
  if (d == DType::BF16) return bf16_to_float(h[i]);
  if (d == DType::F16) return f16_to_float(h[i]);
  return f[i];
}

class KernelDType : public ::testing::TestWithParam<DType> {};

TEST_P(KernelDType, AdamWMatchesScalarReference) {
  const DType d = GetParam();
  for (size_t n : {size_t{1}, size_t{7}, size_t{33}, size_t{1000}, size_t{4099}}) {
    std::mt19937_64 rng(n * 31 + static_cast<size_t>(d));
    std::vector<float> p = random_typed(rng, n, DType::F32, 1.0f).f;
    std::vector<float> ref_p = p;
    std::vector<float> m(n, 0.0f), v(n, 0.0f);
    RefAdamW ref;
    ref.lr = 3e-3;
    ref.weight_decay = 0.05;
    const float mult = 0.5f;
    for (int step = 1; step <= 6; ++step) {
      const Typed g = random_typed(rng, n, d, 0.1f);
      std::vector<uint16_t> out_h(n);
      std::vector<float> out_f(n);
      AdamWHyper h;
      h.lr = ref.lr;
      h.weight_decay = ref.weight_decay;
      h.step = step;
      adamw_update(p.data(), m.data(), v.data(), g.ptr(d),
                   d == DType::F32 ? static_cast<void *>(out_f.data()) : out_h.data(), d, n, mult,
                   h);
      std::vector<float> gs(n);
      for (size_t i = 0; i < n; ++i) gs[i] = g.as_float[i] * mult;
      ref.step(ref_p, gs);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_TRUE(close_rel(p[i], ref_p[i], 1e-6)) << i << ": " << p[i] << " vs " << ref_p[i];
        ASSERT_TRUE(close_rel(m[i], ref.m[i], 1e-6, 1e-12));
        ASSERT_TRUE(close_rel(v[i], ref.v[i], 1e-6, 1e-12));
        ASSERT_EQ(out_at(d, out_h, out_f, i), round_to(d, p[i])) << "model copy is the rounded master";
      }
    }
  }
}

TEST_P(KernelDType, SgdVariantsMatchScalarReference) {
  const DType d = GetParam();
  struct V { double momentum, dampening, wd; bool nesterov; };
  for (const V var : {V{0, 0, 0, false}, V{0.9, 0, 0, false}, V{0.9, 0.1, 1e-3, false},
                      V{0.8, 0, 1e-2, true}, V{0, 0, 1e-2, false}}) {
    for (size_t n : {size_t{5}, size_t{257}, size_t{3001}}) {
      std::mt19937_64 rng(n + 1000 * static_cast<size_t>(d));
      std::vector<float> p = random_typed(rng, n, DType::F32, 1.0f).f, ref_p = p;
      std::vector<float> buf(n, 0.0f);
      RefSgd ref;
      ref.lr = 0.05;
      ref.momentum = var.momentum;
      ref.dampening = var.dampening;
      ref.weight_decay = var.wd;
      ref.nesterov = var.nesterov;
      for (int step = 1; step <= 4; ++step) {
        const Typed g = random_typed(rng, n, d, 0.2f);
        SgdHyper h;
        h.lr = ref.lr;
        h.momentum = var.momentum;
        h.dampening = var.dampening;
        h.weight_decay = var.wd;
        h.nesterov = var.nesterov;
        h.step = step;
        sgd_update(p.data(), var.momentum != 0 ? buf.data() : nullptr, g.ptr(d), nullptr, d, n,
                   1.0f, h);
        ref.step(ref_p, g.as_float);
        for (size_t i = 0; i < n; ++i)
          ASSERT_TRUE(close_rel(p[i], ref_p[i], 1e-6)) << "step " << step << " i " << i;
      }
    }
  }
}

TEST_P(KernelDType, SumSquaresAndNonFinite) {
  const DType d = GetParam();
  std::mt19937_64 rng(5);
  for (size_t n : {size_t{0}, size_t{3}, size_t{8}, size_t{1001}}) {
    const Typed g = random_typed(rng, n, d, 2.0f);
    double ref = 0;
    for (float x : g.as_float) ref += static_cast<double>(x) * x;
    EXPECT_TRUE(close_rel(sum_squares(g.ptr(d), d, n), ref, 1e-12)) << n;
  }
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()}) {
    Typed g = random_typed(rng, 100, d, 1.0f);
    g.f[57] = bad;
    if (d == DType::BF16) g.h[57] = float_to_bf16(bad);
    if (d == DType::F16) g.h[57] = float_to_f16(bad);
    EXPECT_FALSE(std::isfinite(sum_squares(g.ptr(d), d, 100)));
  }
}

TEST_P(KernelDType, ConversionsRoundTrip) {
  const DType d = GetParam();
  std::mt19937_64 rng(9);
  const Typed t = random_typed(rng, 1003, d, 3.0f);
  std::vector<float> f(1003);
  to_float(t.ptr(d), d, f.data(), f.size());
  EXPECT_EQ(f, t.as_float);
  std::vector<uint16_t> h(1003);
  std::vector<float> back(1003);
  from_float(f.data(), d == DType::F32 ? static_cast<void *>(back.data()) : h.data(), d, f.size());
  for (size_t i = 0; i < f.size(); ++i) EXPECT_EQ(out_at(d, h, back, i), f[i]);
}

INSTANTIATE_TEST_SUITE_P(DTypes, KernelDType,
                         ::testing::Values(DType::F32, DType::BF16, DType::F16),
                         [](const auto &info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace smp::optim

namespace smp::optim {
namespace {

// The kernels' float16 conversions (select-based, so they vectorize) agree
// with common/dtype.h's bit for bit: every half, and every 97th float bit
// pattern plus the boundaries of the subnormal, overflow and NaN ranges.
TEST(KernelF16, ConversionsMatchDtypeH) {
  std::vector<uint16_t> halves(65536);
  for (uint32_t i = 0; i < 65536; ++i) halves[i] = static_cast<uint16_t>(i);
  std::vector<float> f(65536);
  to_float(halves.data(), DType::F16, f.data(), f.size());
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want = f16_to_float(static_cast<uint16_t>(i));
    ASSERT_EQ(float_bits(f[i]), float_bits(want)) << std::hex << i;
  }
  std::vector<float> in;
  for (uint64_t u = 0; u <= 0xffffffffull; u += 97) in.push_back(bits_float(static_cast<uint32_t>(u)));
  for (uint32_t base : {0x38800000u, 0x477ff000u, 0x47800000u, 0x7f800000u, 0x33000000u, 0u})
    for (int d = -300; d <= 300; ++d)
      for (uint32_t s : {0u, 0x80000000u}) in.push_back(bits_float((base + static_cast<uint32_t>(d)) ^ s));
  std::vector<uint16_t> out(in.size());
  from_float(in.data(), out.data(), DType::F16, in.size());
  for (size_t i = 0; i < in.size(); ++i)
    ASSERT_EQ(out[i], float_to_f16(in[i])) << std::hex << float_bits(in[i]);
}

// A float16 gradient gives exactly the float32 update of its values, and
// the model copy is the master rounded: on CPUs with F16C that compares
// the F16C loop (and its scalar tail) with the float32 loop, bit for bit.
// Subnormal and large halves included.
TEST(KernelF16, AdamWEqualsFloat32UpdateOfTheSameValues) {
  std::mt19937_64 rng(77);
  for (size_t n : {size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{1000}, size_t{4099}}) {
    std::vector<uint16_t> gh(n), out(n);
    std::vector<float> g32(n);
    for (size_t i = 0; i < n; ++i) {
      uint16_t h;
      do h = static_cast<uint16_t>(rng()); while ((h & 0x7c00u) == 0x7c00u);  // finite
      gh[i] = h;
      g32[i] = f16_to_float(h);
    }
    std::vector<float> p(n), m(n), v(n);
    for (size_t i = 0; i < n; ++i) {
      p[i] = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 997.0f;
      m[i] = static_cast<float>(static_cast<int>(rng() % 201) - 100) / 1e4f;
      v[i] = static_cast<float>(rng() % 100) / 1e6f;
    }
    std::vector<float> p2 = p, m2 = m, v2 = v;
    AdamWHyper h;
    h.lr = 1e-3;
    h.weight_decay = 0.01;
    h.step = 3;
    adamw_update(p.data(), m.data(), v.data(), gh.data(), out.data(), DType::F16, n, 0.25f, h);
    adamw_update(p2.data(), m2.data(), v2.data(), g32.data(), nullptr, DType::F32, n, 0.25f, h);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(float_bits(p[i]), float_bits(p2[i])) << n << " " << i;
      ASSERT_EQ(float_bits(m[i]), float_bits(m2[i])) << n << " " << i;
      ASSERT_EQ(float_bits(v[i]), float_bits(v2[i])) << n << " " << i;
      ASSERT_EQ(out[i], float_to_f16(p[i])) << n << " " << i;
    }
  }
}

}  // namespace
}  // namespace smp::optim
