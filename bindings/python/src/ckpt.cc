// smp._smp.Checkpoint: the checkpoint builder (smp.h "Checkpoints"). The
// registered tensors are read by save and written by load, so the handle
// holds their views until it is closed.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "module.h"
#include "smp/smp.h"
#include "tensor_view.h"

namespace smp_py {

namespace {

class Checkpoint {
 public:
  Checkpoint() { check(smp_ckpt_create(&ck_)); }
  ~Checkpoint() {
    if (ck_ != nullptr) smp_ckpt_destroy(ck_);
  }
  Checkpoint(const Checkpoint &) = delete;
  Checkpoint &operator=(const Checkpoint &) = delete;

  // The piece [offsets, offsets + shape of `tensor`) of global tensor
  // `name`; with range_count > 0, only elements [range_begin, +count) of
  // that box (tensor then holds range_count elements).
  void add(const std::string &name, py::handle tensor, const std::vector<size_t> &global_shape,
           const std::vector<size_t> &offsets, const std::vector<size_t> &local_shape,
           size_t range_begin, size_t range_count, int flags) {
    TensorView v = view_tensor(tensor, true, "tensor", py::none());
    if (v.cuda) raise_error(SMP_ERR_UNSUPPORTED, "checkpoint: host tensors only");
    if (offsets.size() != global_shape.size() || local_shape.size() != global_shape.size()) {
      raise_error(SMP_ERR_INVALID_ARGUMENT,
                  "checkpoint: '" + name + "': global_shape, offsets and local_shape differ in length");
    }
    // Checked: a wrapped product (2^32 x 2^32 is 0) would pass the element
    // count check below with a tensor of the wrong size.
    size_t box = 1;
    bool zero = false, overflow = false;
    for (size_t x : local_shape) {
      if (x == 0) zero = true;
      else if (box > SIZE_MAX / x) overflow = true;
      else box *= x;
    }
    if (zero) box = 0;
    if (overflow && !zero) {
      std::string dims;
      for (size_t x : local_shape) dims += (dims.empty() ? "" : ", ") + std::to_string(x);
      raise_error(SMP_ERR_INVALID_ARGUMENT, "checkpoint: '" + name + "': local_shape [" + dims +
                                                "] has more elements than a size_t can count (2^64 - 1)");
    }
    const size_t expect = range_count > 0 ? range_count : box;
    if (v.count != expect) {
      raise_error(SMP_ERR_INVALID_ARGUMENT, "checkpoint: '" + name + "': tensor has " +
                                                std::to_string(v.count) + " elements, expected " +
                                                std::to_string(expect));
    }
    const int nd = static_cast<int>(global_shape.size());
    if (range_count > 0) {
      check(smp_ckpt_add_range(live(), name.c_str(), v.dtype, nd, global_shape.data(),
                               offsets.data(), local_shape.data(), range_begin, range_count,
                               v.data, flags));
    } else {
      check(smp_ckpt_add_tensor(live(), name.c_str(), v.dtype, nd, global_shape.data(),
                                offsets.data(), local_shape.data(), v.data, flags));
    }
    views_.push_back(std::move(v));
  }
  void set_user(const std::string &key, const py::bytes &value) {
    const std::string s = value;
    check(smp_ckpt_set_user(live(), key.c_str(), s.data(), s.size()));
  }
  py::bytes get_user(const std::string &key, int rank) {
    size_t len = 0;
    check(smp_ckpt_get_user(live(), key.c_str(), rank, nullptr, 0, &len));
    std::string buf(len, '\0');
    check(smp_ckpt_get_user(live(), key.c_str(), rank, buf.data(), len, &len));
    return py::bytes(buf.data(), len);
  }
  void set_options(size_t buffer_bytes, size_t max_file_bytes, bool verify) {
    check(smp_ckpt_set_options(live(), buffer_bytes, max_file_bytes, verify ? 1 : 0));
  }
  std::string save(const std::string &dir, int mode, int keep_last) {
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_ckpt_save(live(), dir.c_str(), static_cast<smp_ckpt_mode_t>(mode), keep_last);
    }
    check(st);
    return last_path();
  }
  std::string load(const std::string &path) {
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_ckpt_load(live(), path.c_str());
    }
    check(st);
    return last_path();
  }
  std::string last_path() {
    const char *p = nullptr;
    check(smp_ckpt_last_path(live(), &p));
    return p ? p : "";
  }
  int saved_world_size() {
    int n = 0;
    check(smp_ckpt_saved_world_size(live(), &n));
    return n;
  }
  void close() {
    if (ck_ != nullptr) {
      smp_ckpt_t c = ck_;
      ck_ = nullptr;
      views_.clear();
      check(smp_ckpt_destroy(c));
    }
  }

 private:
  smp_ckpt_t live() const {
    if (ck_ == nullptr) raise_error(SMP_ERR_INVALID_ARGUMENT, "checkpoint: already closed");
    return ck_;
  }
  smp_ckpt_t ck_ = nullptr;
  std::vector<TensorView> views_;
};

}  // namespace

void bind_ckpt(py::module_ &m) {
  m.attr("CKPT_REPLICATED") = SMP_CKPT_REPLICATED;
  m.attr("CKPT_OPTIMIZER") = SMP_CKPT_OPTIMIZER;
  py::class_<Checkpoint>(m, "Checkpoint")
      .def(py::init<>())
      .def("add", &Checkpoint::add)
      .def("set_user", &Checkpoint::set_user)
      .def("get_user", &Checkpoint::get_user)
      .def("set_options", &Checkpoint::set_options)
      .def("save", &Checkpoint::save)
      .def("load", &Checkpoint::load)
      .def("last_path", &Checkpoint::last_path)
      .def("saved_world_size", &Checkpoint::saved_world_size)
      .def("close", &Checkpoint::close);
}

}  // namespace smp_py
