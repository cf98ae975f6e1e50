// Small helpers shared by the MPI backend's files: dtype/op mapping, error
// conversion, chunking of size_t counts into MPI's int counts.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "common/dtype.h"
#include "common/error.h"
#include "comm/reduce_op.h"

namespace smp::comm::mpi {

// Tags of the backend's own point-to-point traffic on its collective
// communicator (user messages travel on a different communicator).
inline constexpr int kTagReduceScatter = 1;
inline constexpr int kTagGatherv = 2;
inline constexpr int kTagScatterv = 3;
inline constexpr int kTagAlltoallv = 4;

// MPI type that moves dtype elements; FLOAT16/BFLOAT16 move as uint16
// (MPI cannot reduce them; smp does).
inline MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::F16: case DType::BF16: return MPI_UINT16_T;
    case DType::I8: return MPI_INT8_T;
    case DType::U8: return MPI_UINT8_T;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}

// AVG reduces as SUM; the division follows.
inline MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::Avg: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
    case ReduceOp::Prod: return MPI_PROD;
  }
  return MPI_OP_NULL;
}

[[noreturn]] inline void throw_mpi(int rc, const char *what) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  fail(Status::Backend, std::string(what) + ": MPI error " + std::to_string(rc) +
                            (len > 0 ? ": " + std::string(text, static_cast<size_t>(len)) : ""));
}

inline void check_mpi(int rc, const char *what) {
  if (rc != MPI_SUCCESS) throw_mpi(rc, what);
}

// Calls fn(offset, n) over [0, count) in pieces of at most `chunk`
// elements (at least one call, also for count 0, so messages still match).
template <class F>
void for_chunks(size_t count, size_t chunk, F &&fn) {
  size_t off = 0;
  do {
    const size_t n = std::min(chunk, count - off);
    fn(off, static_cast<int>(n));
    off += n;
  } while (off < count);
}

}  // namespace smp::comm::mpi
