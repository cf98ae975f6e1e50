// Device-side element access: load any float dtype to float32, store
// float32 rounded to nearest even. The bfloat16 rounding is dtype.h's bit
// for bit (NaN stays NaN with its payload), so GPU and CPU round alike.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace smp::cuda::detail {

struct F32 {
  using T = float;
  static __device__ __forceinline__ float load(T x) { return x; }
  static __device__ __forceinline__ T store(float x) { return x; }
};

struct BF16 {
  using T = uint16_t;
  static __device__ __forceinline__ float load(T x) {
    return __uint_as_float(static_cast<uint32_t>(x) << 16);
  }
  static __device__ __forceinline__ T store(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  }
};

struct F16 {
  using T = uint16_t;
  static __device__ __forceinline__ float load(T x) { return __half2float(__ushort_as_half(x)); }
  static __device__ __forceinline__ T store(float x) { return __half_as_ushort(__float2half_rn(x)); }
};

// Four consecutive elements of T as one aligned vector load / store.
template <class T> struct Vec4;
template <> struct Vec4<float> { using V = float4; };
template <> struct Vec4<uint16_t> { using V = ushort4; };

// Grid size for a grid-stride loop over `work` items: enough blocks to fill
// the device a few times over, never more than the work needs.
inline unsigned grid_for(size_t work, unsigned block, int sm_count) {
  const size_t want = (work + block - 1) / block;
  const size_t cap = static_cast<size_t>(sm_count > 0 ? sm_count : 80) * 8;
  return static_cast<unsigned>(want < 1 ? 1 : (want < cap ? want : cap));
}


}  // namespace smp::cuda::detail
