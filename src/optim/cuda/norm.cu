// Sum of squares of a device gradient shard (the clipping norm's local
// part), accumulated in double like optim/kernels.h's sum_squares:
// grid-stride per-thread sums, a per-block tree, and one final block over
// the block partials, so the result is deterministic for a given grid.
#include <cuda_runtime.h>

#include <algorithm>

#include "common/error.h"
#include "cuda/elem.cuh"
#include "cuda/runtime.h"
#include "optim/cuda/norm_kernels.h"

namespace smp::cuda {

namespace {

using namespace detail;

constexpr unsigned kBlock = 256;

__device__ double block_sum(double x) {
  __shared__ double s[kBlock];
  s[threadIdx.x] = x;
  __syncthreads();
  for (unsigned w = kBlock / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  return s[0];
}

template <class E>
__global__ void __launch_bounds__(kBlock) partial_kernel(const typename E::T *__restrict__ g, size_t n,
                                                         double *__restrict__ partial) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  double acc = 0;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double x = E::load(g[i]);
    acc += x * x;
  }
  const double b = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = b;
}

__global__ void __launch_bounds__(kBlock) final_kernel(const double *__restrict__ partial, unsigned m,
                                                       double *__restrict__ out) {
  double acc = 0;
  for (unsigned i = threadIdx.x; i < m; i += blockDim.x) acc += partial[i];
  const double b = block_sum(acc);
  if (threadIdx.x == 0) *out = b;
}

}  // namespace

void sum_squares(const void *grad, DType dtype, size_t n, double *out, double *scratch, void *stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const unsigned grid = n == 0 ? 1 : std::min<unsigned>(kSumSquaresBlocks, grid_for(n, kBlock, sm_count()));
  switch (dtype) {
    case DType::F32: partial_kernel<F32><<<grid, kBlock, 0, s>>>(static_cast<const float *>(grad), n, scratch); break;
    case DType::BF16: partial_kernel<BF16><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t *>(grad), n, scratch); break;
    case DType::F16: partial_kernel<F16><<<grid, kBlock, 0, s>>>(static_cast<const uint16_t *>(grad), n, scratch); break;
    default:
      fail(Status::InvalidArgument, std::string("cuda sum_squares: dtype ") + dtype_name(dtype) +
                                        " (F32, BF16 or F16 only)");
  }
  final_kernel<<<1, kBlock, 0, s>>>(scratch, grid, out);
  check(cudaGetLastError(), "cuda sum_squares: kernel launch");
}

}  // namespace smp::cuda
