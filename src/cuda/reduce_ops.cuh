// The reduction operators of the device kernel (reduce_many.cu), with
// comm/reduce.cc's arithmetic and comparisons, so a GPU reduction gives the
// host's bytes; and its op dispatch.
#pragma once

#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "common/error.h"

namespace smp::cuda::detail {

// Integer SUM / PROD in the unsigned twin so that overflow wraps (as
// comm/reduce.cc); 8-bit operands promote to int, so their product is taken
// as unsigned int.
struct SumOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    if constexpr (std::is_integral_v<A>) {
      using U = std::make_unsigned_t<A>;
      return static_cast<A>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  }
};
struct ProdOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const {
    if constexpr (std::is_integral_v<A>) {
      using U = std::make_unsigned_t<A>;
      using W = std::conditional_t<(sizeof(A) < sizeof(unsigned)), unsigned, U>;
      return static_cast<A>(static_cast<W>(static_cast<U>(a)) * static_cast<W>(static_cast<U>(b)));
    } else {
      return a * b;
    }
  }
};
// The host's comparisons: MAX keeps a unless a < b, MIN keeps a unless
// b < a, so which NaN (or which signed zero) survives is the same.
struct MaxOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const { return a < b ? b : a; }
};
struct MinOp {
  template <class A>
  __device__ __forceinline__ A operator()(A a, A b) const { return b < a ? b : a; }
};

// Calls fn(Op{}, std::bool_constant<avg>{}); AVG accumulates like SUM.
template <class Fn>
void with_op(int op, const char *what, Fn &&fn) {
  switch (op) {
    case 0: fn(SumOp{}, std::false_type{}); return;
    case 1: fn(SumOp{}, std::true_type{}); return;
    case 2: fn(MaxOp{}, std::false_type{}); return;
    case 3: fn(MinOp{}, std::false_type{}); return;
    case 4: fn(ProdOp{}, std::false_type{}); return;
    default: break;
  }
  fail(Status::InvalidArgument, std::string(what) + ": unknown op " + std::to_string(op));
}

}  // namespace smp::cuda::detail
