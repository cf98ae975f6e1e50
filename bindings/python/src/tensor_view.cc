#include "tensor_view.h"

#include <dlpack/dlpack.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace smp_py {

namespace {

size_t dtype_bytes(smp_dtype_t d) {
  switch (d) {
    case SMP_FLOAT64: case SMP_INT64: return 8;
    case SMP_FLOAT32: case SMP_INT32: return 4;
    case SMP_FLOAT16: case SMP_BFLOAT16: return 2;
    case SMP_INT8: case SMP_UINT8: return 1;
  }
  return 0;
}

[[noreturn]] void invalid(const std::string &message) {
  raise_error(SMP_ERR_INVALID_ARGUMENT, message);
}

bool dl_dtype(DLDataType t, smp_dtype_t *out) {
  if (t.lanes != 1) return false;
  switch (t.code) {
    case kDLFloat:
      if (t.bits == 32) { *out = SMP_FLOAT32; return true; }
      if (t.bits == 64) { *out = SMP_FLOAT64; return true; }
      if (t.bits == 16) { *out = SMP_FLOAT16; return true; }
      return false;
    case kDLBfloat:
      if (t.bits == 16) { *out = SMP_BFLOAT16; return true; }
      return false;
    case kDLInt:
      if (t.bits == 8) { *out = SMP_INT8; return true; }
      if (t.bits == 32) { *out = SMP_INT32; return true; }
      if (t.bits == 64) { *out = SMP_INT64; return true; }
      return false;
    case kDLUInt:
      if (t.bits == 8) { *out = SMP_UINT8; return true; }
      return false;
    default:
      return false;
  }
}

std::string dl_dtype_str(DLDataType t) {
  const char *code = t.code == kDLFloat ? "float" : t.code == kDLInt ? "int"
                   : t.code == kDLUInt ? "uint" : t.code == kDLBfloat ? "bfloat" : "code";
  std::string s = std::string(code) + std::to_string(t.bits);
  if (t.lanes != 1) s += "x" + std::to_string(t.lanes);
  return s;
}

// Row-major contiguous: strides == NULL (DLPack's "compact") or every
// stride equal to the product of the later extents; extents of 1 may carry
// any stride (torch reports arbitrary ones for them).
bool dl_contiguous(const DLTensor &t) {
  if (t.strides == nullptr) return true;
  int64_t expected = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    if (t.shape[i] != 1 && t.strides[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

// DLPack before v1.0 has no read-only flag: the producer's memory is
// taken as writable (NumPy, whose arrays can be read-only, goes through the
// buffer protocol instead).
TensorView view_dlpack(py::handle obj, const char *what, py::handle stream) {
  // __dlpack_device__ first: the stream argument is only legal for GPUs.
  py::tuple dev = obj.attr("__dlpack_device__")();
  const int dev_type = dev[0].cast<int>();
  const int dev_id = dev[1].cast<int>();
  const bool cuda = dev_type == kDLCUDA || dev_type == kDLCUDAManaged;
  if (!cuda && dev_type != kDLCPU && dev_type != kDLCUDAHost) {
    invalid(std::string(what) + ": unsupported device type " + std::to_string(dev_type) +
            " (smp takes CPU, CUDA host, CUDA and CUDA-managed memory)");
  }
  int64_t stream_value = 1;  // the protocol's legacy default stream
  if (cuda && !stream.is_none()) stream_value = stream.cast<int64_t>();
  if (cuda && stream_value == 0) {
    invalid(std::string(what) + ": stream 0 is ambiguous in the DLPack protocol; "
            "pass 1 for the legacy default stream");
  }
  py::object capsule = cuda ? obj.attr("__dlpack__")(py::arg("stream") = stream_value)
                            : obj.attr("__dlpack__")();
  if (!PyCapsule_IsValid(capsule.ptr(), "dltensor")) {
    invalid(std::string(what) + ": __dlpack__ did not return an unused 'dltensor' capsule");
  }
  auto *managed = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  const DLTensor &t = managed->dl_tensor;

  TensorView v;
  if (!dl_dtype(t.dtype, &v.dtype)) {
    invalid(std::string(what) + ": unsupported dtype " + dl_dtype_str(t.dtype) +
            " (smp takes float32/64/16, bfloat16, int8/32/64, uint8)");
  }
  if (!dl_contiguous(t)) {
    invalid(std::string(what) + ": tensor is not contiguous; pass a contiguous copy "
            "(e.g. t.contiguous()) and copy the result back");
  }
  size_t count = 1;
  for (int i = 0; i < t.ndim; ++i) count *= static_cast<size_t>(t.shape[i]);
  v.count = count;
  v.data = static_cast<char *>(t.data) + t.byte_offset;
  v.cuda = cuda;
  v.device_id = cuda ? dev_id : -1;
  v.stream = cuda ? reinterpret_cast<void *>(static_cast<intptr_t>(stream_value)) : nullptr;
  // The capsule's own destructor calls the producer's deleter (we never
  // rename it to "used_dltensor"), so holding the capsule is holding the
  // memory. Releasing it needs the GIL.
  auto *held = new py::object(std::move(capsule));
  v.owner = std::shared_ptr<void>(held, [](void *p) {
    py::gil_scoped_acquire gil;
    delete static_cast<py::object *>(p);
  });
  return v;
}

bool buffer_dtype(const std::string &fmt, size_t itemsize, smp_dtype_t *out) {
  // Strip byte-order/size prefixes; smp only handles native order.
  std::string f = fmt;
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f = f.substr(1);
  if (f.size() != 1) return false;
  const char c = f[0];
  if (c == 'f' && itemsize == 4) { *out = SMP_FLOAT32; return true; }
  if (c == 'd' && itemsize == 8) { *out = SMP_FLOAT64; return true; }
  if (c == 'e' && itemsize == 2) { *out = SMP_FLOAT16; return true; }
  if ((c == 'b') && itemsize == 1) { *out = SMP_INT8; return true; }
  if ((c == 'B' || c == 'c') && itemsize == 1) { *out = SMP_UINT8; return true; }
  if ((c == 'i' || c == 'l' || c == 'q') && itemsize == 4) { *out = SMP_INT32; return true; }
  if ((c == 'i' || c == 'l' || c == 'q') && itemsize == 8) { *out = SMP_INT64; return true; }
  return false;
}

TensorView view_buffer(py::handle obj, bool writable, const char *what) {
  auto *buf = new Py_buffer;
  const int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
  if (PyObject_GetBuffer(obj.ptr(), buf, flags) != 0) {
    delete buf;
    PyErr_Clear();
    if (writable && PyObject_CheckBuffer(obj.ptr())) {
      invalid(std::string(what) + ": buffer is read-only but smp writes into it");
    }
    invalid(std::string(what) + ": expected a tensor (DLPack or buffer protocol), got " +
            std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  std::shared_ptr<void> owner(buf, [](void *p) {
    py::gil_scoped_acquire gil;
    PyBuffer_Release(static_cast<Py_buffer *>(p));
    delete static_cast<Py_buffer *>(p);
  });
  TensorView v;
  const std::string fmt = buf->format ? buf->format : "B";
  if (!buffer_dtype(fmt, static_cast<size_t>(buf->itemsize), &v.dtype)) {
    invalid(std::string(what) + ": unsupported buffer format '" + fmt + "'");
  }
  if (!PyBuffer_IsContiguous(buf, 'C')) {
    invalid(std::string(what) + ": buffer is not C-contiguous; pass a contiguous copy");
  }
  v.data = buf->buf;
  v.count = static_cast<size_t>(buf->len / buf->itemsize);
  v.owner = std::move(owner);
  return v;
}

}  // namespace

size_t TensorView::bytes() const { return count * dtype_bytes(dtype); }

const char *dtype_name(smp_dtype_t d) {
  switch (d) {
    case SMP_FLOAT32: return "float32";
    case SMP_FLOAT64: return "float64";
    case SMP_FLOAT16: return "float16";
    case SMP_BFLOAT16: return "bfloat16";
    case SMP_INT8: return "int8";
    case SMP_UINT8: return "uint8";
    case SMP_INT32: return "int32";
    case SMP_INT64: return "int64";
  }
  return "?";
}

TensorView view_tensor(py::handle obj, bool writable, const char *what, py::handle stream) {
  // The buffer protocol first where an object offers both (NumPy): it
  // carries the read-only flag that DLPack < 1.0 lacks.
  if (PyObject_CheckBuffer(obj.ptr())) return view_buffer(obj, writable, what);
  if (py::hasattr(obj, "__dlpack__") && py::hasattr(obj, "__dlpack_device__")) {
    return view_dlpack(obj, what, stream);
  }
  return view_buffer(obj, writable, what);
}

void raise_error(int status, const std::string &message) {
  py::object cls = py::module_::import("smp._errors").attr("SmpError");
  py::object err = cls(status, message);
  PyErr_SetObject(cls.ptr(), err.ptr());
  throw py::error_already_set();
}

void check(smp_status_t status) {
  if (status == SMP_SUCCESS) return;
  const char *msg = smp_last_error();
  raise_error(status, msg && *msg ? msg : smp_status_string(status));
}

}  // namespace smp_py
