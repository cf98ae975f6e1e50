#include "comm/reduce.h"

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/half.h"

namespace smp::comm {
namespace {

// Integer SUM/PROD in the unsigned twin so that overflow wraps instead of
// being undefined behaviour.
template <class T, bool = std::is_integral_v<T>> struct ArithOf { using type = T; };
template <class T> struct ArithOf<T, true> { using type = std::make_unsigned_t<T>; };
template <class T> using Arith = typename ArithOf<T>::type;

struct SumF {
  template <class T> T operator()(T a, T b) const {
    return static_cast<T>(static_cast<Arith<T>>(a) + static_cast<Arith<T>>(b));
  }
};
struct ProdF {
  template <class T> T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      // uint8/uint16 promote to int; multiply as unsigned int to wrap.
      using W = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, Arith<T>>;
      return static_cast<T>(static_cast<W>(static_cast<Arith<T>>(a)) *
                            static_cast<W>(static_cast<Arith<T>>(b)));
    } else {
      return a * b;
    }
  }
};
struct MaxF {
  template <class T> T operator()(T a, T b) const { return a < b ? b : a; }
};
struct MinF {
  template <class T> T operator()(T a, T b) const { return b < a ? b : a; }
};

// Calls f(OpFunctor{}) for op; AVG accumulates like SUM.
template <class F> void with_op(ReduceOp op, F &&f) {
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::Avg: f(SumF{}); return;
    case ReduceOp::Prod: f(ProdF{}); return;
    case ReduceOp::Max: f(MaxF{}); return;
    case ReduceOp::Min: f(MinF{}); return;
  }
}

// Calls f(T{}) with the C++ type of a non-half dtype.
template <class F> void with_type(DType t, F &&f) {
  switch (t) {
    case DType::F32: f(float{}); return;
    case DType::F64: f(double{}); return;
    case DType::I8: f(int8_t{}); return;
    case DType::U8: f(uint8_t{}); return;
    case DType::I32: f(int32_t{}); return;
    case DType::I64: f(int64_t{}); return;
    case DType::F16: case DType::BF16: return;  // handled by the half paths
  }
}

// float16 converts whole blocks at a time (common/half.h: F16C where the
// CPU has it) and the reduction runs over float32 blocks that stay in L1;
// bfloat16's conversion is a shift and an integer rounding, cheapest fused
// into the reduction loop itself (a block pass would only add memory
// traffic: measured twice as slow).
struct Bf16 {
  static constexpr bool kBlocks = false;
  static float load(uint16_t h) { return bf16_to_float(h); }
  static uint16_t store(float f) { return float_to_bf16(f); }
};
struct Fp16 {
  static constexpr bool kBlocks = true;
  static void load(const uint16_t *in, float *out, size_t n) { half::f16_to_float_n(in, out, n); }
  static void store(const float *in, uint16_t *out, size_t n) { half::float_to_f16_n(in, out, n); }
};

template <class F> void with_half(DType t, F &&f) {
  if (t == DType::BF16) f(Bf16{}); else f(Fp16{});
}

constexpr size_t kBlock = 512;

// Calls f(offset, length) over [0, n) in blocks of at most kBlock.
template <class F> void blocks(size_t n, F &&f) {
  for (size_t off = 0; off < n; off += kBlock) f(off, n - off < kBlock ? n - off : kBlock);
}

}  // namespace

void reduce_first(void *acc, const void *a, const void *b, size_t n, DType t, ReduceOp op) {
  with_op(op, [&](auto fn) {
    if (accumulates_in_float(t)) {
      with_half(t, [&](auto h) {
        using H = decltype(h);
        float *__restrict o = static_cast<float *>(acc);
        const auto *__restrict x = static_cast<const uint16_t *>(a);
        const auto *__restrict y = static_cast<const uint16_t *>(b);
        if constexpr (H::kBlocks) {
          float yb[kBlock];
          blocks(n, [&](size_t off, size_t m) {
            H::load(x + off, o + off, m);
            H::load(y + off, yb, m);
            for (size_t i = 0; i < m; ++i) o[off + i] = fn(o[off + i], yb[i]);
          });
        } else {
          for (size_t i = 0; i < n; ++i) o[i] = fn(H::load(x[i]), H::load(y[i]));
        }
      });
      return;
    }
    with_type(t, [&](auto tag) {
      using T = decltype(tag);
      T *o = static_cast<T *>(acc);  // may alias x (in place)
      const T *x = static_cast<const T *>(a);
      const T *__restrict y = static_cast<const T *>(b);
      for (size_t i = 0; i < n; ++i) o[i] = fn(x[i], y[i]);
    });
  });
}

void reduce_accumulate(void *acc, const void *b, size_t n, DType t, ReduceOp op) {
  with_op(op, [&](auto fn) {
    if (accumulates_in_float(t)) {
      with_half(t, [&](auto h) {
        using H = decltype(h);
        float *__restrict o = static_cast<float *>(acc);
        const auto *__restrict y = static_cast<const uint16_t *>(b);
        if constexpr (H::kBlocks) {
          float yb[kBlock];
          blocks(n, [&](size_t off, size_t m) {
            H::load(y + off, yb, m);
            for (size_t i = 0; i < m; ++i) o[off + i] = fn(o[off + i], yb[i]);
          });
        } else {
          for (size_t i = 0; i < n; ++i) o[i] = fn(o[i], H::load(y[i]));
        }
      });
      return;
    }
    with_type(t, [&](auto tag) {
      using T = decltype(tag);
      T *__restrict o = static_cast<T *>(acc);
      const T *__restrict y = static_cast<const T *>(b);
      for (size_t i = 0; i < n; ++i) o[i] = fn(o[i], y[i]);
    });
  });
}

void divide_in_place(void *buf, size_t n, DType t, int group_size) {
  if (accumulates_in_float(t)) {
    with_half(t, [&](auto h) {
      using H = decltype(h);
      auto *p = static_cast<uint16_t *>(buf);
      const float d = static_cast<float>(group_size);
      if constexpr (H::kBlocks) {
        float fb[kBlock];
        blocks(n, [&](size_t off, size_t m) {
          H::load(p + off, fb, m);
          for (size_t i = 0; i < m; ++i) fb[i] = fb[i] / d;
          H::store(fb, p + off, m);
        });
      } else {
        for (size_t i = 0; i < n; ++i) p[i] = H::store(H::load(p[i]) / d);
      }
    });
    return;
  }
  with_type(t, [&](auto tag) {
    using T = decltype(tag);
    T *p = static_cast<T *>(buf);
    // Floats divide in their own type; integers truncate toward zero (C).
    const T d = static_cast<T>(group_size);
    if constexpr (std::is_integral_v<T>) {
      // int8 cannot hold sizes above 127; divide in a wider type instead.
      for (size_t i = 0; i < n; ++i) p[i] = static_cast<T>(static_cast<int64_t>(p[i]) / group_size);
      (void)d;
    } else {
      for (size_t i = 0; i < n; ++i) p[i] = p[i] / d;
    }
  });
}

void reduce_finish(void *out, const void *acc, size_t n, DType t, ReduceOp op, int group_size) {
  if (accumulates_in_float(t)) {
    with_half(t, [&](auto h) {
      using H = decltype(h);
      auto *__restrict o = static_cast<uint16_t *>(out);
      const float *__restrict x = static_cast<const float *>(acc);
      const float d = static_cast<float>(group_size);
      if constexpr (H::kBlocks) {
        if (op != ReduceOp::Avg) return H::store(x, o, n);
        float fb[kBlock];
        blocks(n, [&](size_t off, size_t m) {
          for (size_t i = 0; i < m; ++i) fb[i] = x[off + i] / d;
          H::store(fb, o + off, m);
        });
      } else if (op == ReduceOp::Avg) {
        for (size_t i = 0; i < n; ++i) o[i] = H::store(x[i] / d);
      } else {
        for (size_t i = 0; i < n; ++i) o[i] = H::store(x[i]);
      }
    });
    return;
  }
  if (out != acc) std::memmove(out, acc, n * dtype_size(t));
  if (op == ReduceOp::Avg) divide_in_place(out, n, t, group_size);
}

}  // namespace smp::comm
