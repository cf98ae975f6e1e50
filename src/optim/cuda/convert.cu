// Element-wise dtype conversion to and from float32 on the device: one
// element per thread per iteration, grid-stride (memory-bound; these run
// once at optimizer creation and on gather_params, not every step).
#include <cuda_runtime.h>

#include "common/error.h"
#include "cuda/elem.cuh"
#include "cuda/runtime.h"
#include "optim/cuda/convert_kernels.h"

namespace smp::cuda {

namespace {

using namespace detail;

template <class E>
__global__ void __launch_bounds__(256) to_float_kernel(const typename E::T *__restrict__ src,
                                                       float *__restrict__ dst, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = E::load(src[i]);
}

template <class E>
__global__ void __launch_bounds__(256) from_float_kernel(const float *__restrict__ src,
                                                         typename E::T *__restrict__ dst, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    dst[i] = E::store(src[i]);
}

constexpr unsigned kBlock = 256;

[[noreturn]] void bad_dtype(const char *what, DType t) {
  fail(Status::InvalidArgument, std::string(what) + ": dtype " + dtype_name(t) + " (F32, BF16 or F16 only)");
}

}  // namespace

void to_float(const void *src, DType dtype, float *dst, size_t n, void *stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = grid_for(n, kBlock, sm_count());
  switch (dtype) {
    case DType::F32: to_float_kernel<F32><<<grid, kBlock, 0, s>>>(static_cast<const float *>(src), dst, n); break;
    case DType::BF16: to_float_kernel<BF16><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t *>(src), dst, n); break;
    case DType::F16: to_float_kernel<F16><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t *>(src), dst, n); break;
    default: bad_dtype("cuda to_float", dtype);
  }
  check(cudaGetLastError(), "cuda to_float: kernel launch");
}

void from_float(const float *src, void *dst, DType dtype, size_t n, void *stream) {
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = grid_for(n, kBlock, sm_count());
  switch (dtype) {
    case DType::F32: from_float_kernel<F32><<<grid, kBlock, 0, s>>>(src, static_cast<float *>(dst), n); break;
    case DType::BF16: from_float_kernel<BF16><<<grid, kBlock, 0, s>>>(src, static_cast<uint16_t *>(dst), n); break;
    case DType::F16: from_float_kernel<F16><<<grid, kBlock, 0, s>>>(src, static_cast<uint16_t *>(dst), n); break;
    default: bad_dtype("cuda from_float", dtype);
  }
  check(cudaGetLastError(), "cuda from_float: kernel launch");
}

}  // namespace smp::cuda
