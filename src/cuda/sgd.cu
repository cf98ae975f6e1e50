// Fused SGD (momentum, dampening, nesterov, L2 weight decay) on the device,
// operation for operation as optim/cpu_kernels.cc's sgd_loop; the momentum
// mode is a template parameter so the loop has no branch on it.
#include <cuda_runtime.h>

#include "common/error.h"
#include "cuda/elem.cuh"
#include "cuda/optim_kernels.h"
#include "cuda/runtime.h"

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

template <class E, bool kOut, int kMode, bool kNesterov>
__global__ void __launch_bounds__(256) sgd_kernel(float *__restrict__ p, float *__restrict__ buf,
                                                  const typename E::T *__restrict__ g,
                                                  typename E::T *__restrict__ out, size_t n,
                                                  const SgdCoef c) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  // Scalar loads: SGD moves few bytes per element and these loads coalesce
  // fully; the unrolled grid-stride loop keeps enough of them in flight.
#pragma unroll 4
  for (size_t i = tid; i < n; i += stride) {
    float pi = p[i];
    float bi = kMode == 2 ? buf[i] : 0.0f;
    const float r = sgd_one<kMode, kNesterov>(pi, &bi, E::load(g[i]), c);
    p[i] = pi;
    if (kMode != 0) buf[i] = bi;
    if (kOut) out[i] = E::store(r);
  }
}

template <class E, bool kOut>
void launch_modes(float *p, float *b, const typename E::T *g, typename E::T *o, size_t n,
                  const SgdCoef &c, unsigned grid, cudaStream_t s) {
  constexpr unsigned B = 256;
  if (c.mode == 0) sgd_kernel<E, kOut, 0, false><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else if (c.mode == 1 && c.nesterov) sgd_kernel<E, kOut, 1, true><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else if (c.mode == 1) sgd_kernel<E, kOut, 1, false><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else if (c.nesterov) sgd_kernel<E, kOut, 2, true><<<grid, B, 0, s>>>(p, b, g, o, n, c);
  else sgd_kernel<E, kOut, 2, false><<<grid, B, 0, s>>>(p, b, g, o, n, c);
}

template <class E>
void launch(float *p, float *b, const void *g, void *out, size_t n, const SgdCoef &c, cudaStream_t s) {
  using T = typename E::T;
  const unsigned grid = grid_for(n, 256, sm_count());
  if (out) launch_modes<E, true>(p, b, static_cast<const T *>(g), static_cast<T *>(out), n, c, grid, s);
  else launch_modes<E, false>(p, b, static_cast<const T *>(g), nullptr, n, c, grid, s);
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
