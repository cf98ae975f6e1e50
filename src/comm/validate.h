// Argument checks shared by every Communicator call. Each throws
// smp::Error(InvalidArgument) with a message that starts with the
// operation and names the argument; nothing here communicates. Pure.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "comm/call.h"
#include "comm/reduce_op.h"

namespace smp::comm::validate {

void dtype(const char *op, DType t);
void reduce_op(const char *op, ReduceOp r);
// p may be null only when it addresses no element.
void pointer(const char *op, const char *name, const void *p, size_t count);
// count * multiplier elements of dtype t must fit in bytes (size_t) and in
// int64 (what SMP_CHECK exchanges). Returns the byte count.
size_t bytes(const char *op, const char *name, size_t count, size_t multiplier, DType t);
// 0 <= r < size.
void rank(const char *op, const char *name, int r, int size);
// 0 <= tag <= max_tag.
void tag(const char *op, int tag, int max_tag);
// sendbuf [s, s+sbytes) and recvbuf [r, r+rbytes) must not overlap, unless
// s == in_place_send (the in-place form the operation defines).
void no_overlap(const char *op, const void *s, size_t sbytes, const void *r, size_t rbytes,
                const void *in_place_send);

// Every argument check of one Communicator call, in the order the
// operation has always made them (so the first error reported stays the
// same). rank / size: this rank and the group's size; max_tag: MPI_TAG_UB.
CallExtent call(const Call &c, int rank, int size, int max_tag);

}  // namespace smp::comm::validate
