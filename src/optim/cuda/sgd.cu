// Fused SGD (momentum, dampening, nesterov, L2 weight decay) on the device,
// operation for operation as optim/cpu_kernels.cc's sgd_loop; the momentum
// mode is a template parameter so the loop has no branch on it. Vector
// loads (four elements) when every pointer allows, else scalar; grid-stride.
#include <cuda_runtime.h>

#include "common/error.h"
#include "cuda/elem.cuh"
#include "cuda/runtime.h"
#include "optim/cuda/optim_kernels.h"

namespace smp::cuda {

namespace {

using namespace detail;

template <int kMode, bool kNesterov>
__device__ __forceinline__ float sgd_one(float &p, float *buf, float g, const SgdCoef &c) {
  float d = g * c.gmult;
  d = d + c.wd * p;
  if (kMode == 1) *buf = d;
  if (kMode == 2) *buf = *buf * c.momentum + c.omd * d;
  if (kMode != 0) d = kNesterov ? d + c.momentum * *buf : *buf;
  p = p + -c.lr * d;
  return p;
}

template <class E, bool kOut, int kMode, bool kNesterov, bool kVec>
__global__ void __launch_bounds__(256) sgd_kernel(float *__restrict__ p, float *__restrict__ buf,
                                                  const typename E::T *__restrict__ g,
                                                  typename E::T *__restrict__ out, size_t n,
                                                  const SgdCoef c) {
  using T = typename E::T;
  using GV = typename Vec4<T>::V;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  size_t done = 0;
  if (kVec) {  // four elements per iteration, 16-byte loads and stores
    const size_t n4 = n / 4;
    for (size_t i = tid; i < n4; i += stride) {
      float4 pp = reinterpret_cast<const float4 *>(p)[i];
      float4 bb = kMode == 2 ? reinterpret_cast<const float4 *>(buf)[i] : make_float4(0, 0, 0, 0);
      const GV gg = reinterpret_cast<const GV *>(g)[i];
      GV oo;
      oo.x = E::store(sgd_one<kMode, kNesterov>(pp.x, &bb.x, E::load(gg.x), c));
      oo.y = E::store(sgd_one<kMode, kNesterov>(pp.y, &bb.y, E::load(gg.y), c));
      oo.z = E::store(sgd_one<kMode, kNesterov>(pp.z, &bb.z, E::load(gg.z), c));
      oo.w = E::store(sgd_one<kMode, kNesterov>(pp.w, &bb.w, E::load(gg.w), c));
      reinterpret_cast<float4 *>(p)[i] = pp;
      if (kMode != 0) reinterpret_cast<float4 *>(buf)[i] = bb;
      if (kOut) reinterpret_cast<GV *>(out)[i] = oo;
    }
    done = n4 * 4;
  }
  for (size_t i = done + tid; i < n; i += stride) {
    float pi = p[i];
    float bi = kMode == 2 ? buf[i] : 0.0f;
    const float r = sgd_one<kMode, kNesterov>(pi, &bi, E::load(g[i]), c);
    p[i] = pi;
    if (kMode != 0) buf[i] = bi;
    if (kOut) out[i] = E::store(r);
  }
}

template <class E, bool kOut, bool kVec>
void launch_modes(float *p, float *b, const typename E::T *g, typename E::T *o, size_t n,
                  const SgdCoef &c, unsigned grid, cudaStream_t s) {
  constexpr unsigned B = 256;
  if (c.mode == 0) sgd_kernel<E, kOut, 0, false, kVec><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else if (c.mode == 1 && c.nesterov) sgd_kernel<E, kOut, 1, true, kVec><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else if (c.mode == 1) sgd_kernel<E, kOut, 1, false, kVec><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else if (c.nesterov) sgd_kernel<E, kOut, 2, true, kVec><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else sgd_kernel<E, kOut, 2, false, kVec><<<grid, B, 0, s>>>(p, b, g, o, n, c);
}

template <class E>
void launch(float *p, float *b, const void *g, void *out, size_t n, const SgdCoef &c, cudaStream_t s) {
  using T = typename E::T;
  const size_t gv = 4 * sizeof(T);
  const bool vec = aligned(p, 16) && (b == nullptr || aligned(b, 16)) && aligned(g, gv) &&
                   (out == nullptr || aligned(out, gv));
  const unsigned grid = grid_for(vec ? (n + 3) / 4 : n, 256, sm_count());
  const auto *gg = static_cast<const T *>(g);
  auto *oo = static_cast<T *>(out);
  if (vec && oo) launch_modes<E, true, true>(p, b, gg, oo, n, c, grid, s);
  else if (vec) launch_modes<E, false, true>(p, b, gg, nullptr, n, c, grid, s);
  else if (oo) launch_modes<E, true, false>(p, b, gg, oo, n, c, grid, s);
  else launch_modes<E, false, false>(p, b, gg, nullptr, n, c, grid, s);
  check(cudaGetLastError(), "sgd_update: kernel launch");
}

}  // namespace

void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out, DType dtype,
                size_t n, const SgdCoef &c, void *stream) {
  if (n == 0) return;
  if (c.mode != 0 && momentum_buf == nullptr)
    fail(Status::InvalidArgument, "cuda sgd_update: momentum > 0 needs a momentum buffer");
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::F32: return launch<F32>(master, momentum_buf, grad, param_out, n, c, s);
    case DType::BF16: return launch<BF16>(master, momentum_buf, grad, param_out, n, c, s);
    case DType::F16: return launch<F16>(master, momentum_buf, grad, param_out, n, c, s);
    default: break;
  }
  fail(Status::InvalidArgument, std::string("cuda sgd_update: gradients of dtype ") +
                                    dtype_name(dtype) + " (F32, BF16 or F16 only)");
}

}  // namespace smp::cuda
