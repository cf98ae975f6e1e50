// reduce_many (reduce_many.h): one grid-stride kernel per (dtype, op), the n
// input pointers passed by value; 16-byte vector loads when every pointer
// allows them. out is not __restrict__: it may be an input (in-place
// reduce-scatter), each element read by the thread that writes it. Each thread
// reads element i of every input in order, so the combination order per
// element is fixed (left to right, as comm/reduce.cc) whatever the launch
// shape, and the result is the host's bit for bit. The functors below are
// comm/reduce.cc's with the same casts; nvcc runs with -fmad=false and IEEE
// division, and every combination is a single add or multiply anyway.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "cuda/elem.cuh"
#include "cuda/reduce_ops.cuh"
#include "cuda/reduce_many.h"
#include "cuda/runtime.h"

namespace smp::cuda {

namespace {

using namespace detail;

constexpr unsigned kBlock = 256;

// Element access: the stored type T and the accumulator Acc. Non-half types
// accumulate in themselves; FLOAT16 / BFLOAT16 in float32 with elem.cuh's
// conversions (bfloat16 rounding identical to common/dtype.h's).
template <class T_>
struct Plain {
  using T = T_;
  using Acc = T_;
  static __device__ __forceinline__ Acc load(T x) { return x; }
  static __device__ __forceinline__ T store(Acc x) { return x; }
};
template <class E>
struct Half : E {
  using Acc = float;
};

// reduce_finish: AVG divides floats in the accumulator's type (float32 for
// the half types, then rounds), integers in int64 truncating toward zero.
template <class E, bool kAvg>
__device__ __forceinline__ typename E::T finish(typename E::Acc acc, int group_size) {
  using A = typename E::Acc;
  if constexpr (!kAvg) {
    return E::store(acc);
  } else if constexpr (std::is_integral_v<A>) {
    return static_cast<typename E::T>(static_cast<int64_t>(acc) / static_cast<int64_t>(group_size));
  } else {
    return E::store(acc / static_cast<A>(group_size));
  }
}

// Passed by value: kernel parameter space, no device copy of the pointers.
struct Inputs {
  const void *p[kReduceManyMaxInputs];
};

// Element i: every input's element i combined left to right, finished.
template <class E, class Op, bool kAvg>
__device__ __forceinline__ void reduce_one(typename E::T *out, const Inputs &ins, int n,
                                           size_t i, int group_size) {
  using T = typename E::T;
  using A = typename E::Acc;
  A acc = Op{}(E::load(static_cast<const T *>(ins.p[0])[i]), E::load(static_cast<const T *>(ins.p[1])[i]));
  for (int k = 2; k < n; ++k) acc = Op{}(acc, E::load(static_cast<const T *>(ins.p[k])[i]));
  out[i] = finish<E, kAvg>(acc, group_size);
}

// kVec (every pointer 16-byte aligned): each step moves 16 bytes of every
// input as one vector load and combines its elements one by one, then the
// last count % (16 / sizeof(T)) elements go one per thread. Vectors only
// batch the memory traffic; each element still combines left to right.
template <class E, class Op, bool kAvg, bool kVec>
__global__ void __launch_bounds__(kBlock) reduce_many_kernel(typename E::T *out,
                                                             const Inputs ins, int n, size_t count,
                                                             int group_size) {
  using T = typename E::T;
  using A = typename E::Acc;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t first = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if constexpr (!kVec) {
    for (size_t i = first; i < count; i += stride) reduce_one<E, Op, kAvg>(out, ins, n, i, group_size);
  } else {
    constexpr int kV = 16 / sizeof(T);
    union Pack {
      uint4 raw;
      T v[kV];
    };
    const size_t packs = count / kV;
    for (size_t j = first; j < packs; j += stride) {
      Pack x, y;
      x.raw = static_cast<const uint4 *>(ins.p[0])[j];
      y.raw = static_cast<const uint4 *>(ins.p[1])[j];
      A acc[kV];
#pragma unroll
      for (int e = 0; e < kV; ++e) acc[e] = Op{}(E::load(x.v[e]), E::load(y.v[e]));
      for (int k = 2; k < n; ++k) {
        x.raw = static_cast<const uint4 *>(ins.p[k])[j];
#pragma unroll
        for (int e = 0; e < kV; ++e) acc[e] = Op{}(acc[e], E::load(x.v[e]));
      }
#pragma unroll
      for (int e = 0; e < kV; ++e) y.v[e] = finish<E, kAvg>(acc[e], group_size);
      reinterpret_cast<uint4 *>(out)[j] = y.raw;
    }
    const size_t tail = packs * kV + first;
    if (tail < count) reduce_one<E, Op, kAvg>(out, ins, n, tail, group_size);
  }
}

template <class Fn>
void with_elem(DType t, Fn &&fn) {
  switch (t) {
    case DType::F32: fn(Plain<float>{}); return;
    case DType::F64: fn(Plain<double>{}); return;
    case DType::F16: fn(Half<F16>{}); return;
    case DType::BF16: fn(Half<BF16>{}); return;
    case DType::I8: fn(Plain<int8_t>{}); return;
    case DType::U8: fn(Plain<uint8_t>{}); return;
    case DType::I32: fn(Plain<int32_t>{}); return;
    case DType::I64: fn(Plain<int64_t>{}); return;
  }
  fail(Status::InvalidArgument, "cuda reduce_many: invalid dtype " + std::to_string(static_cast<int>(t)));
}

}  // namespace

void reduce_many(void *out, const void *const *ins, int n, size_t count, DType t, int op,
                 int group_size, void *stream) {
  if (n < 2 || n > kReduceManyMaxInputs)
    fail(Status::InvalidArgument, "cuda reduce_many: " + std::to_string(n) + " inputs (2 to " +
                                      std::to_string(kReduceManyMaxInputs) + ")");
  if (!dtype_valid(static_cast<int>(t)))
    fail(Status::InvalidArgument, "cuda reduce_many: invalid dtype " + std::to_string(static_cast<int>(t)));
  if (op < 0 || op > 4) fail(Status::InvalidArgument, "cuda reduce_many: unknown op " + std::to_string(op));
  if (op == 1 && group_size < 1)
    fail(Status::InvalidArgument, "cuda reduce_many: AVG over a group of " + std::to_string(group_size));
  if (count == 0) return;
  if (out == nullptr || ins == nullptr) fail(Status::InvalidArgument, "cuda reduce_many: null buffer");
  Inputs in{};
  for (int k = 0; k < n; ++k) {
    if (ins[k] == nullptr)
      fail(Status::InvalidArgument, "cuda reduce_many: input " + std::to_string(k) + " is null");
    in.p[k] = ins[k];
  }
  bool vec = aligned(out, 16);
  for (int k = 0; k < n; ++k) vec = vec && aligned(ins[k], 16);
  auto s = static_cast<cudaStream_t>(stream);
  with_elem(t, [&](auto e) {
    using E = decltype(e);
    using T = typename E::T;
    constexpr size_t kV = 16 / sizeof(T);
    // Vector steps (at least one thread for the tail), or elements.
    const unsigned grid = grid_for(vec ? (count / kV > 0 ? count / kV : 1) : count, kBlock, sm_count());
    with_op(op, "cuda reduce_many", [&](auto f, auto avg) {
      using Op = decltype(f);
      constexpr bool kAvg = decltype(avg)::value;
      if (vec)
        reduce_many_kernel<E, Op, kAvg, true><<<grid, kBlock, 0, s>>>(static_cast<T *>(out), in, n, count,
                                                                      group_size);
      else
        reduce_many_kernel<E, Op, kAvg, false><<<grid, kBlock, 0, s>>>(static_cast<T *>(out), in, n, count,
                                                                       group_size);
    });
  });
  check(cudaGetLastError(), "cuda reduce_many");
}

}  // namespace smp::cuda
