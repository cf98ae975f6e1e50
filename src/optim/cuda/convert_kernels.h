// dtype <-> float32 conversion of device arrays, the CUDA twins of
// optim::to_float / from_float (round to nearest even on the way down,
// elem.cuh's rounding, which matches common/dtype.h bit for bit). The
// sharded optimizer uses them to fill its float32 master shard from the
// model's tensors and to write the master back as the model's dtype.
// Pointers are device memory of n elements; `stream` is a cudaStream_t.
#pragma once

#include <cstddef>

#include "common/dtype.h"

namespace smp::cuda {

void to_float(const void *src, DType dtype, float *dst, size_t n, void *stream);
void from_float(const float *src, void *dst, DType dtype, size_t n, void *stream);

}  // namespace smp::cuda
