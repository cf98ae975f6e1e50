// smp._smp's tensor transport (smp.h "Pipeline: tensor transport"):
// send_tensor, recv_tensor, recv_tensor_into, exchange_tensors.
//
// Unlike send/recv, these carry the tensor's dtype and shape, so the C API
// takes DLManagedTensors rather than (pointer, count, dtype) views:
// - DLPack objects (torch) pass their own __dlpack__ capsule's tensor;
// - buffer-protocol objects (NumPy, preferred where both exist because it
//   carries the read-only flag) get a DLManagedTensor over their Py_buffer.
// Both borrow the memory zero-copy. A tensor the runtime allocates (a
// receive without a destination) comes back as an unconsumed "dltensor"
// capsule: the consumer (torch / NumPy from_dlpack) takes it over, and its
// deleter returns the buffer to the runtime when the framework frees the
// tensor; a capsule nobody consumed runs the deleter when it dies.
#include <dlpack/dlpack.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "module.h"
#include "smp/smp.h"
#include "tensor_view.h"

namespace smp_py {

namespace {

constexpr const char *kCapsuleName = "dltensor";
constexpr const char *kUsedCapsuleName = "used_dltensor";

[[noreturn]] void invalid(const std::string &message) {
  raise_error(SMP_ERR_INVALID_ARGUMENT, message);
}

// The element types NumPy's buffer protocol exposes that smp handles (the
// transport itself moves any whole-byte dtype; this is the smp set).
bool buffer_dltype(const char *format, Py_ssize_t itemsize, DLDataType *out) {
  std::string f = format ? format : "B";
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f = f.substr(1);
  if (f.size() != 1) return false;
  const char c = f[0];
  const auto bits = static_cast<uint8_t>(itemsize * 8);
  if ((c == 'f' && itemsize == 4) || (c == 'd' && itemsize == 8) || (c == 'e' && itemsize == 2)) {
    *out = DLDataType{kDLFloat, bits, 1};
    return true;
  }
  if (c == 'b' && itemsize == 1) { *out = DLDataType{kDLInt, 8, 1}; return true; }
  if ((c == 'B' || c == 'c') && itemsize == 1) { *out = DLDataType{kDLUInt, 8, 1}; return true; }
  if ((c == 'i' || c == 'l' || c == 'q') && (itemsize == 4 || itemsize == 8)) {
    *out = DLDataType{kDLInt, bits, 1};
    return true;
  }
  return false;
}

// One Python tensor as the C API takes it; valid (and its memory alive)
// while this object lives. Destroy it with the GIL held.
class DlArg {
 public:
  DlArg(py::handle obj, bool writable, const char *what) {
    if (PyObject_CheckBuffer(obj.ptr())) {
      from_buffer(obj, writable, what);
    } else if (py::hasattr(obj, "__dlpack__") && py::hasattr(obj, "__dlpack_device__")) {
      from_dlpack(obj, what);
    } else {
      invalid(std::string(what) + ": expected a tensor (DLPack or buffer protocol), got " +
              std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    }
  }
  ~DlArg() {
    if (have_buffer_) PyBuffer_Release(&buffer_);
  }
  DlArg(const DlArg &) = delete;
  DlArg &operator=(const DlArg &) = delete;

  DLManagedTensor *get() const { return managed_; }

 private:
  void from_buffer(py::handle obj, bool writable, const char *what) {
    const int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj.ptr(), &buffer_, flags) != 0) {
      PyErr_Clear();
      invalid(std::string(what) + (writable ? ": buffer is read-only but smp writes into it"
                                            : ": object refused to export its buffer"));
    }
    have_buffer_ = true;
    DLDataType dtype{};
    if (!buffer_dltype(buffer_.format, buffer_.itemsize, &dtype)) {
      invalid(std::string(what) + ": unsupported buffer format '" +
              (buffer_.format ? buffer_.format : "B") + "'");
    }
    if (!PyBuffer_IsContiguous(&buffer_, 'C')) {
      invalid(std::string(what) + ": buffer is not C-contiguous; pass a contiguous copy");
    }
    // PyBUF_STRIDES implies PyBUF_ND: shape is set whenever ndim > 0.
    if (buffer_.ndim > 0) shape_.assign(buffer_.shape, buffer_.shape + buffer_.ndim);
    DLTensor &t = local_.dl_tensor;
    t.data = buffer_.buf;
    t.device = DLDevice{kDLCPU, 0};
    t.ndim = static_cast<int>(shape_.size());
    t.dtype = dtype;
    t.shape = shape_.empty() ? nullptr : shape_.data();
    t.strides = nullptr;  // compact: checked above
    t.byte_offset = 0;
    managed_ = &local_;
  }

  void from_dlpack(py::handle obj, const char *what) {
    py::tuple dev = obj.attr("__dlpack_device__")();
    const int dev_type = dev[0].cast<int>();
    // The transport has no stream argument: it moves CUDA memory with
    // blocking copies, ordered after the legacy default stream, so the
    // producer is asked to order its pending work before that stream (1).
    const bool cuda = dev_type == kDLCUDA || dev_type == kDLCUDAManaged;
    capsule_ = cuda ? obj.attr("__dlpack__")(py::arg("stream") = 1) : obj.attr("__dlpack__")();
    if (!PyCapsule_IsValid(capsule_.ptr(), kCapsuleName)) {
      invalid(std::string(what) + ": __dlpack__ did not return an unused 'dltensor' capsule");
    }
    // Not renamed to "used_dltensor": the capsule's destructor runs the
    // producer's deleter when capsule_ goes.
    managed_ = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule_.ptr(), kCapsuleName));
  }

  DLManagedTensor *managed_ = nullptr;
  DLManagedTensor local_{};
  std::vector<int64_t> shape_;
  Py_buffer buffer_{};
  bool have_buffer_ = false;
  py::object capsule_;
};

// The DLPack capsule protocol's destructor: a capsule still named
// "dltensor" was never consumed, so its tensor is freed here.
void capsule_destructor(PyObject *capsule) {
  if (PyCapsule_IsValid(capsule, kUsedCapsuleName)) return;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  auto *m = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (m == nullptr) {
    PyErr_WriteUnraisable(capsule);
  } else if (m->deleter != nullptr) {
    m->deleter(m);
  }
  PyErr_Restore(type, value, traceback);
}

// Takes ownership of a runtime-allocated tensor.
py::object to_capsule(DLManagedTensor *m) {
  PyObject *c = PyCapsule_New(m, kCapsuleName, capsule_destructor);
  if (c == nullptr) {
    if (m->deleter != nullptr) m->deleter(m);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(c);
}

smp_group_t grp(int group) { return static_cast<smp_group_t>(group); }

// (tensor, peer, tag) or (tensor_or_None, peer, tag).
struct Transfer {
  py::handle tensor;
  int peer;
  int tag;
};

std::vector<Transfer> transfers(const py::sequence &items, const char *what) {
  std::vector<Transfer> out;
  out.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    py::object item = items[i];
    const std::string name = std::string(what) + "[" + std::to_string(i) + "]";
    if (!py::isinstance<py::sequence>(item) || py::len(item) != 3) {
      invalid("exchange_tensors: " + name + " is not a (tensor, peer, tag) triple");
    }
    py::sequence s = item;
    out.push_back(Transfer{s[0], s[1].cast<int>(), s[2].cast<int>()});
  }
  return out;
}

}  // namespace

void bind_transport(py::module_ &m) {
  m.def("send_tensor", [](py::handle t, int peer, int group, int tag) {
    DlArg a(t, false, "tensor");
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_send_tensor(a.get(), peer, grp(group), tag);
    }
    check(st);
  });
  m.def("recv_tensor", [](int peer, int group, int tag) {
    DLManagedTensor *got = nullptr;
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_recv_tensor(&got, peer, grp(group), tag);
    }
    check(st);
    return to_capsule(got);
  });
  m.def("recv_tensor_into", [](py::handle t, int peer, int group, int tag) {
    DlArg a(t, true, "tensor");
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_recv_tensor_into(a.get(), peer, grp(group), tag);
    }
    check(st);
  });
  // Returns one entry per receive: a capsule where the tensor was None (a
  // new tensor), else None (the caller's tensor was filled). With
  // defer_sends, returns (that list, a Request for the sends) once the
  // receives are complete (smp_exchange_tensors_deferred).
  m.def("exchange_tensors", [](py::sequence sends, py::sequence recvs, int group,
                               bool defer_sends) -> py::object {
    const std::vector<Transfer> s = transfers(sends, "sends");
    const std::vector<Transfer> r = transfers(recvs, "recvs");
    std::vector<std::unique_ptr<DlArg>> held;
    std::vector<smp_tensor_transfer_t> cs(s.size()), cr(r.size());
    for (size_t i = 0; i < s.size(); ++i) {
      const std::string what = "exchange_tensors: sends[" + std::to_string(i) + "]";
      held.push_back(std::make_unique<DlArg>(s[i].tensor, false, what.c_str()));
      cs[i] = smp_tensor_transfer_t{s[i].peer, s[i].tag, held.back()->get()};
    }
    for (size_t i = 0; i < r.size(); ++i) {
      DLManagedTensor *into = nullptr;
      if (!r[i].tensor.is_none()) {
        const std::string what = "exchange_tensors: recvs[" + std::to_string(i) + "]";
        held.push_back(std::make_unique<DlArg>(r[i].tensor, true, what.c_str()));
        into = held.back()->get();
      }
      cr[i] = smp_tensor_transfer_t{r[i].peer, r[i].tag, into};
    }
    smp_status_t st;
    smp_request_t sent = nullptr;
    {
      py::gil_scoped_release nogil;
      st = defer_sends ? smp_exchange_tensors_deferred(cs.data(), cs.size(), cr.data(), cr.size(),
                                                       grp(group), &sent)
                       : smp_exchange_tensors(cs.data(), cs.size(), cr.data(), cr.size(), grp(group));
    }
    // Take ownership of the new tensors first, so none leaks on failure.
    py::list out;
    for (size_t i = 0; i < r.size(); ++i) {
      if (r[i].tensor.is_none() && cr[i].tensor != nullptr) {
        out.append(to_capsule(cr[i].tensor));
      } else {
        out.append(py::none());
      }
    }
    check(st);
    if (!defer_sends) return out;
    // The receive tensors are complete; the send tensors stay alive (and
    // exported) with the request until the sends complete.
    held.resize(s.size());
    auto keep = std::make_shared<std::vector<std::unique_ptr<DlArg>>>(std::move(held));
    return py::make_tuple(out, std::make_unique<Request>(sent, std::move(keep)));
  }, py::arg("sends"), py::arg("recvs"), py::arg("group"), py::arg("defer_sends") = false);
  m.def("capsule_info", [](py::handle capsule) {
    // For tests: the data pointer, dtype (code, bits) and shape of an
    // unconsumed capsule from recv_tensor / exchange_tensors.
    if (!PyCapsule_IsValid(capsule.ptr(), kCapsuleName)) invalid("capsule_info: not an unused 'dltensor' capsule");
    auto *mt = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule.ptr(), kCapsuleName));
    const DLTensor &t = mt->dl_tensor;
    std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
    return py::make_tuple(reinterpret_cast<uintptr_t>(static_cast<char *>(t.data) + t.byte_offset),
                          static_cast<int>(t.dtype.code), static_cast<int>(t.dtype.bits), shape);
  });
}

}  // namespace smp_py
