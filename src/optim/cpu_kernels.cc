// CPU implementation of optim/kernels.h. Each hot loop is a plain loop over
// restrict pointers that GCC vectorizes (this file is built at -O3 with
// -fno-math-errno so sqrt stays inline); target_clones adds an AVX2 copy
// picked at load time, with a baseline copy for older CPUs. The bfloat16
// conversions are common/dtype.h's; float16 has select-based twins here,
// and AdamW's float16 loop uses common/half.h's F16C conversions where the
// CPU has them.
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "optim/kernels.h"

namespace smp::optim {

namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SMP_KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define SMP_KERNEL
#endif
#define SMP_INLINE inline __attribute__((always_inline))

// Element access per dtype: load to float, store rounded from float.
struct F32 {
  using T = float;
  static SMP_INLINE float load(T x) { return x; }
  static SMP_INLINE T store(float x) { return x; }
};
struct BF16 {
  using T = uint16_t;
  static SMP_INLINE float load(T x) { return bf16_to_float(x); }
  static SMP_INLINE T store(float x) { return float_to_bf16(x); }
};
// c ? a : b as mask arithmetic: GCC if-converts a ternary chain only
// sometimes, and a branch in the loop body stops vectorization.
SMP_INLINE uint32_t select(bool c, uint32_t a, uint32_t b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return (a & m) | (b & ~m);
}

// IEEE binary16 with every case computed and one selected, so the loops
// vectorize (common/dtype.h's versions branch). Same results bit for bit,
// subnormals, inf and NaN included (kernels_test checks it).
struct F16 {
  using T = uint16_t;
  static SMP_INLINE float load(T h) {
    const uint32_t o = static_cast<uint32_t>(h & 0x7fffu) << 13;  // exponent + mantissa
    const uint32_t e = o & 0x0f800000u;
    const uint32_t normal = o + 0x38000000u;                      // rebias 15 -> 127
    const uint32_t infnan = o + 0x70000000u;                      // exponent all ones
    // Subnormal: 2^-14 * (1 + m/1024) - 2^-14 = m * 2^-24, exactly.
    const uint32_t sub = float_bits(bits_float(o + 0x38800000u) - bits_float(0x38800000u));
    const uint32_t r = select(e == 0x0f800000u, infnan, select(e == 0, sub, normal));
    return bits_float(r | (static_cast<uint32_t>(h & 0x8000u) << 16));
  }
  static SMP_INLINE T store(float x) {
    const uint32_t u = float_bits(x);
    const uint32_t sign = u & 0x80000000u;
    const uint32_t a = u ^ sign;
    const uint32_t infnan = select(a > 0x7f800000u, 0x7e00u, 0x7c00u);
    // Below 2^-14: adding 0.5 aligns the half's subnormal unit with the
    // float's last mantissa bit, and the float addition rounds to even.
    const uint32_t sub = float_bits(bits_float(a) + 0.5f) - 0x3f000000u;
    // Normal: rebias 127 -> 15 and round the 13 dropped bits to even.
    const uint32_t normal = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
    const uint32_t r = select(a >= 0x47800000u, infnan, select(a < 0x38800000u, sub, normal));
    return static_cast<T>(r | (sign >> 16));
  }
};

// Hyperparameters as the float32 coefficients torch applies them with.
struct AdamWCoef {
  float gmult, decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step;
};
AdamWCoef adamw_coef(const AdamWHyper &h, float gmult) {
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  return {gmult,
          static_cast<float>(1.0 - h.lr * h.weight_decay),
          static_cast<float>(h.beta1),
          static_cast<float>(1.0 - h.beta1),
          static_cast<float>(h.beta2),
          static_cast<float>(1.0 - h.beta2),
          static_cast<float>(std::sqrt(bc2)),
          static_cast<float>(h.eps),
          static_cast<float>(-(h.lr / bc1))};
}

template <class E, bool kOut>
SMP_INLINE void adamw_loop(float *__restrict p, float *__restrict m, float *__restrict v,
                           const typename E::T *__restrict g, typename E::T *__restrict out,
                           size_t n, const AdamWCoef c) {
  for (size_t i = 0; i < n; ++i) {
    const float gi = E::load(g[i]) * c.gmult;
    const float mi = m[i] * c.b1 + c.omb1 * gi;
    const float vi = v[i] * c.b2 + c.omb2 * gi * gi;
    const float denom = std::sqrt(vi) / c.bc2_sqrt + c.eps;
    const float pi = p[i] * c.decay + c.neg_step * mi / denom;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
    if (kOut) out[i] = E::store(pi);
  }
}

struct SgdCoef {
  float gmult, lr, momentum, omd, wd;
};

// kMode: 0 = no momentum, 1 = momentum (buffer initialized from the
// gradient on the first step), 2 = momentum, later steps.
template <class E, bool kOut, int kMode, bool kNesterov>
SMP_INLINE void sgd_loop(float *__restrict p, float *__restrict buf,
                         const typename E::T *__restrict g, typename E::T *__restrict out,
                         size_t n, const SgdCoef c) {
  for (size_t i = 0; i < n; ++i) {
    float d = E::load(g[i]) * c.gmult;
    d = d + c.wd * p[i];
    if (kMode == 1) buf[i] = d;
    if (kMode == 2) buf[i] = buf[i] * c.momentum + c.omd * d;
    if (kMode != 0) d = kNesterov ? d + c.momentum * buf[i] : buf[i];
    const float pi = p[i] + -c.lr * d;
    p[i] = pi;
    if (kOut) out[i] = E::store(pi);
  }
}

// One dispatch target per dtype, each with its own AVX2 clone; the
// variants (model-copy output or not, momentum mode) are chosen outside the
// loops so that every loop is branch-free.
#define SMP_ADAMW_FN(NAME, E)                                                              \
  SMP_KERNEL void NAME(float *p, float *m, float *v, const void *g, void *out, size_t n, \
                       AdamWCoef c) {                                                      \
    const auto *gg = static_cast<const E::T *>(g);                                         \
    auto *oo = static_cast<E::T *>(out);                                                   \
    if (oo) adamw_loop<E, true>(p, m, v, gg, oo, n, c);                                    \
    else adamw_loop<E, false>(p, m, v, gg, oo, n, c);                                      \
  }
SMP_ADAMW_FN(adamw_f32, F32)
SMP_ADAMW_FN(adamw_bf16, BF16)
SMP_ADAMW_FN(adamw_f16_generic, F16)
#undef SMP_ADAMW_FN

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
// float16 AdamW with the F16C conversion instructions, 8 elements at a
// time: F16's select-based conversions cost more than the memory traffic
// (the loop ran at half the bandwidth bound). The same single-precision
// operations in the same order as adamw_loop (each correctly rounded, no
// FMA), and F16C rounds to nearest even like F16::store, so the results
// are the generic loop's bit for bit; only NaN payloads may differ (F16C
// keeps a NaN's top payload bits, F16::store makes every NaN 0x7e00).
__attribute__((target("avx2,f16c"))) void adamw_f16_f16c(float *__restrict p,
                                                         float *__restrict m,
                                                         float *__restrict v,
                                                         const uint16_t *__restrict g,
                                                         uint16_t *__restrict out, size_t n,
                                                         const AdamWCoef c) {
  const __m256 gmult = _mm256_set1_ps(c.gmult), b1 = _mm256_set1_ps(c.b1),
               omb1 = _mm256_set1_ps(c.omb1), b2 = _mm256_set1_ps(c.b2),
               omb2 = _mm256_set1_ps(c.omb2), bc2 = _mm256_set1_ps(c.bc2_sqrt),
               eps = _mm256_set1_ps(c.eps), decay = _mm256_set1_ps(c.decay),
               neg_step = _mm256_set1_ps(c.neg_step);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_mul_ps(half::load8_f16(g + i), gmult);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), b1), _mm256_mul_ps(omb1, gi));
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), b2),
                                    _mm256_mul_ps(_mm256_mul_ps(omb2, gi), gi));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2), eps);
    const __m256 pi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), decay),
                                    _mm256_div_ps(_mm256_mul_ps(neg_step, mi), denom));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    _mm256_storeu_ps(p + i, pi);
    if (out) half::store8_f16(out + i, pi);
  }
  if (i < n) adamw_f16_generic(p + i, m + i, v + i, g + i, out ? out + i : nullptr, n - i, c);
}

void adamw_f16(float *p, float *m, float *v, const void *g, void *out, size_t n, AdamWCoef c) {
  static const bool f16c = __builtin_cpu_supports("avx2") && half::has_f16c();
  if (f16c)
    return adamw_f16_f16c(p, m, v, static_cast<const uint16_t *>(g), static_cast<uint16_t *>(out),
                          n, c);
  adamw_f16_generic(p, m, v, g, out, n, c);
}
#else
void adamw_f16(float *p, float *m, float *v, const void *g, void *out, size_t n, AdamWCoef c) {
  adamw_f16_generic(p, m, v, g, out, n, c);
}
#endif

template <class E, bool kOut>
SMP_INLINE void sgd_modes(float *p, float *b, const typename E::T *g, typename E::T *o, size_t n,
                          const SgdCoef &c, int mode, bool nesterov) {
  if (mode == 0) sgd_loop<E, kOut, 0, false>(p, b, g, o, n, c);
  else if (mode == 1 && nesterov) sgd_loop<E, kOut, 1, true>(p, b, g, o, n, c);
  else if (mode == 1) sgd_loop<E, kOut, 1, false>(p, b, g, o, n, c);
  else if (nesterov) sgd_loop<E, kOut, 2, true>(p, b, g, o, n, c);
  else sgd_loop<E, kOut, 2, false>(p, b, g, o, n, c);
}

#define SMP_SGD_FN(NAME, E)                                                                 \
  SMP_KERNEL void NAME(float *p, float *b, const void *g, void *out, size_t n, SgdCoef c,  \
                       int mode, bool nesterov) {                                           \
    const auto *gg = static_cast<const E::T *>(g);                                          \
    auto *oo = static_cast<E::T *>(out);                                                    \
    if (oo) sgd_modes<E, true>(p, b, gg, oo, n, c, mode, nesterov);                         \
    else sgd_modes<E, false>(p, b, gg, oo, n, c, mode, nesterov);                           \
  }
SMP_SGD_FN(sgd_f32, F32)
SMP_SGD_FN(sgd_bf16, BF16)
SMP_SGD_FN(sgd_f16, F16)
#undef SMP_SGD_FN

template <class E>
SMP_INLINE double sum_squares_loop(const typename E::T *__restrict g, size_t n) {
  // Eight independent accumulators: the compiler may not reorder a single
  // floating-point sum, but it vectorizes these lanes.
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) {
      const double x = E::load(g[i + j]);
      acc[j] += x * x;
    }
  for (; i < n; ++i) {
    const double x = E::load(g[i]);
    acc[0] += x * x;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

SMP_KERNEL double sumsq_f32(const void *g, size_t n) {
  return sum_squares_loop<F32>(static_cast<const float *>(g), n);
}
SMP_KERNEL double sumsq_bf16(const void *g, size_t n) {
  return sum_squares_loop<BF16>(static_cast<const uint16_t *>(g), n);
}
SMP_KERNEL double sumsq_f16(const void *g, size_t n) {
  return sum_squares_loop<F16>(static_cast<const uint16_t *>(g), n);
}

template <class E>
void to_float_loop(const typename E::T *__restrict s, float *__restrict d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = E::load(s[i]);
}
template <class E>
void from_float_loop(const float *__restrict s, typename E::T *__restrict d, size_t n) {
  for (size_t i = 0; i < n; ++i) d[i] = E::store(s[i]);
}

[[noreturn]] void bad_dtype(DType t) {
  fail(Status::Internal, std::string("optimizer kernel called with dtype ") + dtype_name(t));
}

}  // namespace

void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                  void *param_out, DType dtype, size_t n, float grad_mult, const AdamWHyper &h) {
  const AdamWCoef c = adamw_coef(h, grad_mult);
  switch (dtype) {
    case DType::F32: return adamw_f32(master, exp_avg, exp_avg_sq, grad, param_out, n, c);
    case DType::BF16: return adamw_bf16(master, exp_avg, exp_avg_sq, grad, param_out, n, c);
    case DType::F16: return adamw_f16(master, exp_avg, exp_avg_sq, grad, param_out, n, c);
    default: bad_dtype(dtype);
  }
}

void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                DType dtype, size_t n, float grad_mult, const SgdHyper &h) {
  const SgdCoef c{grad_mult, static_cast<float>(h.lr), static_cast<float>(h.momentum),
                  static_cast<float>(1.0 - h.dampening), static_cast<float>(h.weight_decay)};
  const int mode = h.momentum == 0.0 ? 0 : (h.step <= 1 ? 1 : 2);
  if (mode != 0 && momentum_buf == nullptr && n > 0)
    fail(Status::Internal, "sgd_update: momentum > 0 needs a momentum buffer");
  switch (dtype) {
    case DType::F32: return sgd_f32(master, momentum_buf, grad, param_out, n, c, mode, h.nesterov);
    case DType::BF16: return sgd_bf16(master, momentum_buf, grad, param_out, n, c, mode, h.nesterov);
    case DType::F16: return sgd_f16(master, momentum_buf, grad, param_out, n, c, mode, h.nesterov);
    default: bad_dtype(dtype);
  }
}

double sum_squares(const void *grad, DType dtype, size_t n) {
  switch (dtype) {
    case DType::F32: return sumsq_f32(grad, n);
    case DType::BF16: return sumsq_bf16(grad, n);
    case DType::F16: return sumsq_f16(grad, n);
    default: bad_dtype(dtype);
  }
}

void to_float(const void *src, DType dtype, float *dst, size_t n) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::BF16: return to_float_loop<BF16>(static_cast<const uint16_t *>(src), dst, n);
    case DType::F16: return to_float_loop<F16>(static_cast<const uint16_t *>(src), dst, n);
    default: bad_dtype(dtype);
  }
}

void from_float(const float *src, void *dst, DType dtype, size_t n) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::BF16: return from_float_loop<BF16>(src, static_cast<uint16_t *>(dst), n);
    case DType::F16: return from_float_loop<F16>(src, static_cast<uint16_t *>(dst), n);
    default: bad_dtype(dtype);
  }
}

}  // namespace smp::optim
