// Grid-stride element-wise reductions (see reduce_kernels.h). The operator
// and the element type are template parameters, so each kernel is one
// branch-free loop; half types load to float32, reduce, and store float32.
#include <cuda_runtime.h>

#include "common/error.h"
#include "cuda/elem.cuh"
#include "cuda/reduce_ops.cuh"
#include "cuda/reduce_kernels.h"
#include "cuda/runtime.h"

namespace smp::cuda {

namespace {

using namespace detail;

constexpr unsigned kBlock = 256;

// first: acc = load(a) op load(b); otherwise acc = acc op load(b).
template <class E, class Op, bool kFirst>
__global__ void __launch_bounds__(kBlock) combine_kernel(float *acc,
                                                         const typename E::T *a,
                                                         const typename E::T *__restrict__ b,
                                                         size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    acc[i] = Op{}(kFirst ? E::load(a[i]) : acc[i], E::load(b[i]));
}

template <class E>
__global__ void __launch_bounds__(kBlock) finish_kernel(typename E::T *out, const float *acc,
                                                        size_t n, float divisor) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = E::store(divisor == 1.0f ? acc[i] : acc[i] / divisor);
}

template <class Fn>
void with_dtype(DType t, const char *what, Fn &&fn) {
  switch (t) {
    case DType::F32: fn(F32{}); return;
    case DType::F16: fn(F16{}); return;
    case DType::BF16: fn(BF16{}); return;
    default: break;
  }
  fail(Status::InvalidArgument, std::string(what) + ": dtype " + dtype_name(t) +
                                    " (F32, F16 or BF16 only)");
}

template <bool kFirst>
void combine(float *acc, const void *a, const void *b, size_t n, DType t, int op, void *stream,
             const char *what) {
  if (n == 0) return;
  const unsigned grid = grid_for(n, kBlock, sm_count());
  auto s = static_cast<cudaStream_t>(stream);
  with_dtype(t, what, [&](auto e) {
    using E = decltype(e);
    using T = typename E::T;
    with_op(op, what, [&](auto f, auto) {
      combine_kernel<E, decltype(f), kFirst><<<grid, kBlock, 0, s>>>(
          acc, static_cast<const T *>(a), static_cast<const T *>(b), n);
    });
  });
  check(cudaGetLastError(), what);
}

}  // namespace

// The accumulator is float32 for every supported dtype (F32 is its own
// float32), so the kernels above serve all three.
void reduce_first(void *acc, const void *a, const void *b, size_t n, DType t, int op, void *stream) {
  combine<true>(static_cast<float *>(acc), a, b, n, t, op, stream, "cuda reduce_first");
}

void reduce_accumulate(void *acc, const void *b, size_t n, DType t, int op, void *stream) {
  combine<false>(static_cast<float *>(acc), nullptr, b, n, t, op, stream, "cuda reduce_accumulate");
}

void reduce_finish(void *out, const void *acc, size_t n, DType t, int op, int group_size,
                   void *stream) {
  with_op(op, "cuda reduce_finish", [](auto, auto) {});
  if (n == 0) return;
  // comm/reduce.cc divides float32 in float32 and half types in float32.
  const float divisor = op == 1 ? static_cast<float>(group_size) : 1.0f;
  if (t == DType::F32 && out == acc && divisor == 1.0f) return;
  const unsigned grid = grid_for(n, kBlock, sm_count());
  auto s = static_cast<cudaStream_t>(stream);
  with_dtype(t, "cuda reduce_finish", [&](auto e) {
    using E = decltype(e);
    finish_kernel<E><<<grid, kBlock, 0, s>>>(static_cast<typename E::T *>(out),
                                             static_cast<const float *>(acc), n, divisor);
  });
  check(cudaGetLastError(), "cuda reduce_finish");
}

}  // namespace smp::cuda
