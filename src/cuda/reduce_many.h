// One-launch reduction of n arrays into a device array: the IPC backend
// (comm/ipc/) reduces every member's segment at once, the staged backend its
// own piece with the pieces its peers sent (comm/staged/). The CUDA twin of
// comm/reduce.h's reduce_first + reduce_accumulate... + reduce_finish, bit for
// bit: the inputs combine left to right in the same accumulator (float32 for
// FLOAT16 / BFLOAT16, rounded once at the end; the element type otherwise),
// integer SUM / PROD wrap, MAX / MIN use the same comparisons (so NaN handling
// matches), and AVG divides like reduce_finish (floats in the accumulator's
// type, integers in int64 truncating toward zero). No CUDA types here.
#pragma once

#include <cstddef>

#include "common/dtype.h"

namespace smp::cuda {

// Inputs one reduce_many() takes. comm/ipc checks that its kMaxInputs fits.
inline constexpr int kReduceManyMaxInputs = 64;

// out[i] = ins[0][i] op ins[1][i] op ... op ins[n-1][i] for i < count, every
// dtype; `op` is an smp_op_t value (0 SUM, 1 AVG, 2 MAX, 3 MIN, 4 PROD),
// AVG divided by group_size; enqueued on `stream` (a cudaStream_t; NULL =
// default stream) of the current device. Inputs are memory the current
// device can read: its own, IPC-mapped, or pinned host memory (the staged
// backend's staging buffers). out may be an input itself (the same
// elements), and must not partly overlap one. Throws smp::Error(InvalidArgument) unless 2 <= n <=
// kReduceManyMaxInputs, op and t are valid and (for AVG) group_size > 0;
// smp::Error(Backend) when the launch fails. count 0 launches nothing.
void reduce_many(void *out, const void *const *ins, int n, size_t count, DType t, int op,
                 int group_size, void *stream);

}  // namespace smp::cuda
