// Local element-wise reductions for the reduce-scatter / allreduce
// algorithms that smp runs itself (MPI has no float16 / bfloat16, and Open
// MPI's reduce-scatter is slow). Pure; the loops are written for the
// compiler to vectorize (reduce.cc is built with -O3).
//
// A reduction keeps an accumulator per element: the element type itself,
// except FLOAT16 / BFLOAT16 which accumulate in float32 and are rounded
// once, by reduce_finish. Integer SUM and PROD wrap (two's complement)
// instead of overflowing; AVG accumulates like SUM and reduce_finish
// divides (floats: in the element type's arithmetic, or float32 for the
// half types; integers: truncation toward zero), as smp.h documents.
#pragma once

#include <cstddef>

#include "common/dtype.h"
#include "comm/reduce_op.h"

namespace smp::comm {

// True for FLOAT16 / BFLOAT16, whose accumulator is float32.
inline bool accumulates_in_float(DType t) { return t == DType::F16 || t == DType::BF16; }
// Bytes per accumulator element.
inline size_t accumulator_size(DType t) { return accumulates_in_float(t) ? 4 : dtype_size(t); }

// acc[i] = a[i] op b[i]; a and b hold dtype elements. acc may be a itself
// when the accumulator type is the element type (in-place reduce-scatter).
void reduce_first(void *acc, const void *a, const void *b, size_t n, DType t, ReduceOp op);
// acc[i] = acc[i] op b[i].
void reduce_accumulate(void *acc, const void *b, size_t n, DType t, ReduceOp op);
// out[i] = acc[i] (for AVG divided by group_size), as a dtype element. out
// may be acc itself when the accumulator type is the element type.
void reduce_finish(void *out, const void *acc, size_t n, DType t, ReduceOp op, int group_size);
// AVG's division alone, in place on dtype elements (after an MPI SUM).
void divide_in_place(void *buf, size_t n, DType t, int group_size);

}  // namespace smp::comm
