// Reduce-scatter by pairwise exchange over point-to-point: each rank sends
// block j of its input straight to rank j (all sends posted at once) and
// folds the blocks it receives for itself into its accumulator, segment by
// segment, through a few cache-sized buffers, while the next segments are
// in flight. Every byte crosses once ((size-1)/size of the input per rank,
// the lower bound), and the reduction is smp's own vectorized loop: Open
// MPI's MPI_Reduce_scatter_block reduces then scatters, 4-5x slower here.
// Also the first half of smp's allreduce for FLOAT16/BFLOAT16.
#pragma once

#include <mpi.h>

#include <cstddef>

#include "common/dtype.h"
#include "comm/reduce_op.h"

namespace smp::comm::mpi {

// Block r of the reduction (counts[r] elements at element offset displs[r]
// of every rank's input) lands in `out` on rank r. out may be this rank's
// own block of `send` (in place); it must not overlap any other block.
void pairwise_reduce_scatter(MPI_Comm comm, int rank, int size, const void *send, void *out,
                             const size_t *counts, const size_t *displs, DType t, ReduceOp op);

}  // namespace smp::comm::mpi
