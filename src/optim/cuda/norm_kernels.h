// Sum of squares of n device elements of dtype (F32, BF16, F16),
// accumulated in double: the local part of the gradient-clipping norm, the
// CUDA twin of optim::sum_squares. Enqueued on `stream`; the result lands
// in *out (device memory). scratch: device memory for kSumSquaresBlocks
// doubles. Any inf or NaN makes the result non-finite, as on the CPU.
#pragma once

#include <cstddef>

#include "common/dtype.h"

namespace smp::cuda {

inline constexpr unsigned kSumSquaresBlocks = 1024;

void sum_squares(const void *grad, DType dtype, size_t n, double *out, double *scratch, void *stream);

}  // namespace smp::cuda
