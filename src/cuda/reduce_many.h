// One-launch reduction of n device arrays into a third, for the IPC backend
// (comm/ipc/): ranks that share a GPU reduce every member's segment at
// once instead of pairwise. The CUDA twin of comm/reduce.h's reduce_first +
// reduce_accumulate... + reduce_finish, bit for bit: the inputs combine left
// to right in the same accumulator (float32 for FLOAT16 / BFLOAT16, rounded
// once at the end; the element type otherwise), integer SUM / PROD wrap,
// MAX / MIN use the same comparisons (so NaN handling matches), and AVG
// divides like reduce_finish (floats in the accumulator's type, integers in
// int64 truncating toward zero). No CUDA types here, as in reduce_kernels.h.
#pragma once

#include <cstddef>

#include "common/dtype.h"

namespace smp::cuda {

// Inputs one reduce_many() takes. comm/ipc checks that its kMaxInputs fits.
inline constexpr int kReduceManyMaxInputs = 64;

// out[i] = ins[0][i] op ins[1][i] op ... op ins[n-1][i] for i < count, every
// dtype; `op` is an smp_op_t value (0 SUM, 1 AVG, 2 MAX, 3 MIN, 4 PROD),
// AVG divided by group_size; enqueued on `stream` (a cudaStream_t; NULL =
// default stream) of the current device. All pointers are device memory
// the current device can read (own or IPC-mapped); out must not overlap an
// input. Throws smp::Error(InvalidArgument) unless 2 <= n <=
// kReduceManyMaxInputs, op and t are valid and (for AVG) group_size > 0;
// smp::Error(Backend) when the launch fails. count 0 launches nothing.
void reduce_many(void *out, const void *const *ins, int n, size_t count, DType t, int op,
                 int group_size, void *stream);

}  // namespace smp::cuda
