// Element-wise reductions on device buffers, the CUDA twins of
// comm/reduce.h (same accumulator rule: FLOAT16 / BFLOAT16 accumulate in
// float32 and are rounded once, by reduce_finish; same MAX/MIN comparisons,
// so NaN handling matches). For reductions that run on the GPU between
// staged transfers. Float dtypes only (F32, F16, BF16); `op` is an
// smp_op_t value (SUM, AVG, MAX, MIN, PROD); `stream` a cudaStream_t.
#pragma once

#include <cstddef>

#include "common/dtype.h"

namespace smp::cuda {

// acc[i] = a[i] op b[i] (acc: float32 for the half types, else dtype).
void reduce_first(void *acc, const void *a, const void *b, size_t n, DType t, int op, void *stream);
// acc[i] = acc[i] op b[i].
void reduce_accumulate(void *acc, const void *b, size_t n, DType t, int op, void *stream);
// out[i] = acc[i] (AVG: / group_size, in float32), rounded to dtype. out may
// be acc itself when the accumulator type is the element type.
void reduce_finish(void *out, const void *acc, size_t n, DType t, int op, int group_size,
                   void *stream);

}  // namespace smp::cuda
