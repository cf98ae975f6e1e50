// Whole-array conversions between float32 and the 16-bit floats, for the
// hot loops that read or write them (comm's local reductions, optim's
// float16 step). float16 uses the F16C instructions, 8 elements at a time,
// where the CPU has them, and common/dtype.h's scalar conversions
// elsewhere; bfloat16 is dtype.h's conversion in a loop the compiler
// vectorizes. Every path gives the scalar conversion's bits: F16C rounds
// to nearest even like float_to_f16 and widens exactly like f16_to_float,
// and a group of 8 holding a NaN (whose payload F16C treats differently)
// is redone by the scalar code.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define SMP_HALF_F16C 1
#else
#define SMP_HALF_F16C 0
#endif

namespace smp::half {

// Whether this CPU runs the F16C paths (F16C with AVX); asked once.
inline bool has_f16c() {
#if SMP_HALF_F16C
  static const bool yes = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  return yes;
#else
  return false;
#endif
}

// The scalar paths (the fallback, and the reference the tests compare with).
inline void f16_to_float_scalar(const uint16_t *in, float *out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = f16_to_float(in[i]);
}
inline void float_to_f16_scalar(const float *in, uint16_t *out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_f16(in[i]);
}

#if SMP_HALF_F16C
// 8 float16 at p as floats, exact. For optim's fused loops.
__attribute__((target("avx,f16c"))) inline __m256 load8_f16(const uint16_t *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
}
// 8 floats rounded to nearest even into float16 at p (a NaN keeps F16C's
// payload; f16_to_float_f16c / float_to_f16_f16c redo NaNs the scalar way).
__attribute__((target("avx,f16c"))) inline void store8_f16(uint16_t *p, __m256 x) {
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

__attribute__((target("avx,f16c"))) inline void f16_to_float_f16c(const uint16_t *in, float *out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = load8_f16(in + i);
    if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0)
      f16_to_float_scalar(in + i, out + i, 8);  // F16C quiets a signalling NaN; dtype.h keeps it
    else
      _mm256_storeu_ps(out + i, x);
  }
  f16_to_float_scalar(in + i, out + i, n - i);
}

__attribute__((target("avx,f16c"))) inline void float_to_f16_f16c(const float *in, uint16_t *out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(in + i);
    if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0)
      float_to_f16_scalar(in + i, out + i, 8);  // dtype.h makes every NaN 0x7e00 (with its sign)
    else
      store8_f16(out + i, x);
  }
  float_to_f16_scalar(in + i, out + i, n - i);
}
#endif

// out[i] = f16_to_float(in[i]) for i < n.
inline void f16_to_float_n(const uint16_t *in, float *out, size_t n) {
#if SMP_HALF_F16C
  if (has_f16c()) return f16_to_float_f16c(in, out, n);
#endif
  f16_to_float_scalar(in, out, n);
}

// out[i] = float_to_f16(in[i]) for i < n.
inline void float_to_f16_n(const float *in, uint16_t *out, size_t n) {
#if SMP_HALF_F16C
  if (has_f16c()) return float_to_f16_f16c(in, out, n);
#endif
  float_to_f16_scalar(in, out, n);
}

// bfloat16: a shift one way and an integer rounding the other, which the
// compiler vectorizes as they stand.
inline void bf16_to_float_n(const uint16_t *__restrict in, float *__restrict out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}
inline void float_to_bf16_n(const float *__restrict in, uint16_t *__restrict out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_bf16(in[i]);
}

}  // namespace smp::half
