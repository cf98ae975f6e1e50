// A borrowed view of a Python tensor's memory (pointer, element count,
// smp dtype, memory kind), taken zero-copy through DLPack (`__dlpack__`,
// torch tensors, NumPy >= 1.22, CuPy, JAX) or, failing that, the buffer
// protocol (NumPy, array.array, bytearray, memoryview).
//
// The view keeps whatever owns the memory alive (the DLPack capsule, or the
// Py_buffer) for as long as it exists, so it may outlive the call that made
// it: non-blocking requests hold their views until they complete.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <string>

#include "smp/smp.h"

namespace smp_py {

namespace py = pybind11;

struct TensorView {
  void *data = nullptr;
  size_t count = 0;           // elements
  smp_dtype_t dtype = SMP_FLOAT32;
  bool cuda = false;          // device memory (CUDA or CUDA-managed)
  int device_id = -1;
  void *stream = nullptr;     // the stream to enqueue on (CUDA only)
  std::shared_ptr<void> owner;  // keeps the memory alive (capsule or buffer)

  size_t bytes() const;
};

// Raises SmpError(SMP_ERR_INVALID_ARGUMENT) for anything smp cannot take:
// non-contiguous, unsupported dtype or device, read-only when `writable`.
// `what` names the argument in messages ("tensor", "input", "output").
// `stream` follows the DLPack stream protocol (None, or 1 = legacy default,
// 2 = per-thread default, else a cudaStream_t); it is only used for CUDA
// memory, where the producer orders its own work before that stream.
TensorView view_tensor(py::handle obj, bool writable, const char *what, py::handle stream);

// Names for messages.
const char *dtype_name(smp_dtype_t dtype);

// Raise SmpError(status, message) (the Python class from smp._errors).
[[noreturn]] void raise_error(int status, const std::string &message);
// After a C call: raise SmpError with smp_last_error() unless it succeeded.
void check(smp_status_t status);

}  // namespace smp_py
