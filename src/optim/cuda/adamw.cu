// Fused AdamW on the device: one pass reads master, both moments and the
// gradient and writes master, both moments and (optionally) the model copy,
// which is the memory-bound minimum (28 bytes per element in float32).
// Four elements per thread per iteration as 16-byte vector loads when every
// pointer allows it, grid-stride so any n runs on a fixed grid.
#include <cuda_runtime.h>

#include "common/error.h"
#include "cuda/elem.cuh"
#include "cuda/runtime.h"
#include "optim/cuda/optim_kernels.h"

namespace smp::cuda {

namespace {

using namespace detail;

// One element, operation for operation as optim/cpu_kernels.cc's adamw_loop.
__device__ __forceinline__ float adamw_one(float &p, float &m, float &v, float g, const AdamWCoef &c) {
  const float gi = g * c.gmult;
  const float mi = m * c.b1 + c.omb1 * gi;
  const float vi = v * c.b2 + c.omb2 * gi * gi;
  const float denom = sqrtf(vi) / c.bc2_sqrt + c.eps;
  const float pi = p * c.decay + c.neg_step * mi / denom;
  m = mi;
  v = vi;
  p = pi;
  return pi;
}

template <class E, bool kOut, bool kVec>
__global__ void __launch_bounds__(256) adamw_kernel(float *__restrict__ p, float *__restrict__ m,
                                                    float *__restrict__ v,
                                                    const typename E::T *__restrict__ g,
                                                    typename E::T *__restrict__ out, size_t n,
                                                    const AdamWCoef c) {
  using T = typename E::T;
  using GV = typename Vec4<T>::V;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t done = 0;
  if (kVec) {
    const size_t n4 = n / 4;
    for (size_t i = tid; i < n4; i += stride) {
      float4 pp = reinterpret_cast<const float4 *>(p)[i];
      float4 mm = reinterpret_cast<const float4 *>(m)[i];
      float4 vv = reinterpret_cast<const float4 *>(v)[i];
      const GV gg = reinterpret_cast<const GV *>(g)[i];
      GV oo;
      oo.x = E::store(adamw_one(pp.x, mm.x, vv.x, E::load(gg.x), c));
      oo.y = E::store(adamw_one(pp.y, mm.y, vv.y, E::load(gg.y), c));
      oo.z = E::store(adamw_one(pp.z, mm.z, vv.z, E::load(gg.z), c));
      oo.w = E::store(adamw_one(pp.w, mm.w, vv.w, E::load(gg.w), c));
      reinterpret_cast<float4 *>(p)[i] = pp;
      reinterpret_cast<float4 *>(m)[i] = mm;
      reinterpret_cast<float4 *>(v)[i] = vv;
      if (kOut) reinterpret_cast<GV *>(out)[i] = oo;
    }
    done = n4 * 4;
  }
  for (size_t i = done + tid; i < n; i += stride) {
    float pi = p[i], mi = m[i], vi = v[i];
    const float r = adamw_one(pi, mi, vi, E::load(g[i]), c);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (kOut) out[i] = E::store(r);
  }
}

template <class E>
void launch(float *p, float *m, float *v, const void *g, void *out, size_t n, const AdamWCoef &c,
            cudaStream_t s) {
  using T = typename E::T;
  const auto *gg = static_cast<const T *>(g);
  auto *oo = static_cast<T *>(out);
  const size_t gv = 4 * sizeof(T);
  const bool vec = aligned(p, 16) && aligned(m, 16) && aligned(v, 16) && aligned(g, gv) &&
                   (out == nullptr || aligned(out, gv));
  constexpr unsigned kBlock = 256;
  const unsigned grid = grid_for(vec ? (n + 3) / 4 : n, kBlock, sm_count());
  if (vec && oo) adamw_kernel<E, true, true><<<grid, kBlock, 0, s>>>(p, m, v, gg, oo, n, c);
  else if (vec) adamw_kernel<E, false, true><<<grid, kBlock, 0, s>>>(p, m, v, gg, oo, n, c);
  else if (oo) adamw_kernel<E, true, false><<<grid, kBlock, 0, s>>>(p, m, v, gg, oo, n, c);
  else adamw_kernel<E, false, false><<<grid, kBlock, 0, s>>>(p, m, v, gg, oo, n, c);
  check(cudaGetLastError(), "adamw_update: kernel launch");
}

}  // namespace

void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                  void *param_out, DType dtype, size_t n, const AdamWCoef &c, void *stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32: return launch<F32>(master, exp_avg, exp_avg_sq, grad, param_out, n, c, s);
    case DType::BF16: return launch<BF16>(master, exp_avg, exp_avg_sq, grad, param_out, n, c, s);
    case DType::F16: return launch<F16>(master, exp_avg, exp_avg_sq, grad, param_out, n, c, s);
    default: break;
  }
  fail(Status::InvalidArgument, std::string("cuda adamw_update: gradients of dtype ") +
                                    dtype_name(dtype) + " (F32, BF16 or F16 only)");
}

}  // namespace smp::cuda
