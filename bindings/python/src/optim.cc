// smp._smp.Optimizer: the sharded optimizer (smp.h "Sharded optimizer").
// It reads gradients from, and writes parameters into, the tensors given at
// creation for its whole life, so it holds their views until close().
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "module.h"
#include "smp/smp.h"
#include "tensor_view.h"

namespace smp_py {

namespace {

class Optimizer {
 public:
  Optimizer(const py::dict &cfg_in, const py::list &tensors) {
    smp_optimizer_config_t cfg = SMP_OPTIMIZER_CONFIG_INIT;
    for (auto item : cfg_in) {
      const std::string k = item.first.cast<std::string>();
      py::handle v = item.second;
      if (k == "kind") cfg.kind = static_cast<smp_optimizer_kind_t>(v.cast<int>());
      else if (k == "lr") cfg.lr = v.cast<double>();
      else if (k == "beta1") cfg.beta1 = v.cast<double>();
      else if (k == "beta2") cfg.beta2 = v.cast<double>();
      else if (k == "eps") cfg.eps = v.cast<double>();
      else if (k == "weight_decay") cfg.weight_decay = v.cast<double>();
      else if (k == "momentum") cfg.momentum = v.cast<double>();
      else if (k == "dampening") cfg.dampening = v.cast<double>();
      else if (k == "nesterov") cfg.nesterov = v.cast<bool>() ? 1 : 0;
      else if (k == "group") cfg.group = static_cast<smp_group_t>(v.cast<int>());
      else if (k == "norm_group") cfg.norm_group = v.cast<int>();
      else if (k == "bucket_bytes") cfg.bucket_bytes = v.cast<size_t>();
      else if (k == "max_grad_norm") cfg.max_grad_norm = v.cast<double>();
      else if (k == "check_finite") cfg.check_finite = v.cast<bool>() ? 1 : 0;
      else raise_error(SMP_ERR_INVALID_ARGUMENT, "optimizer: unknown setting '" + k + "'");
    }
    std::vector<smp_optimizer_tensor_t> list;
    names_.reserve(tensors.size());
    for (auto item : tensors) {
      py::tuple t = item.cast<py::tuple>();  // (name, param, grad, tp_replicated)
      if (t.size() != 4) {
        raise_error(SMP_ERR_INVALID_ARGUMENT,
                    "optimizer: each tensor is (name, param, grad, tp_replicated)");
      }
      names_.push_back(t[0].cast<std::string>());
      TensorView p = view_tensor(t[1], true, "param", py::none());
      TensorView g = view_tensor(t[2], false, "grad", py::none());
      if (p.dtype != g.dtype || p.count != g.count) {
        raise_error(SMP_ERR_INVALID_ARGUMENT, "optimizer: tensor '" + names_.back() +
                                                  "': param and grad differ in dtype or size");
      }
      smp_optimizer_tensor_t e{};
      e.count = p.count;
      e.dtype = p.dtype;
      e.param = p.data;
      e.grad = g.data;
      e.tp_replicated = t[3].cast<bool>() ? 1 : 0;
      list.push_back(e);
      views_.push_back(std::move(p));
      views_.push_back(std::move(g));
    }
    for (size_t i = 0; i < list.size(); ++i) list[i].name = names_[i].c_str();
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_optimizer_create(&cfg, list.data(), list.size(), &opt_);
    }
    check(st);
  }
  ~Optimizer() {
    if (opt_ != nullptr) smp_optimizer_destroy(opt_);
  }
  Optimizer(const Optimizer &) = delete;
  Optimizer &operator=(const Optimizer &) = delete;

  py::tuple step(double grad_scale) {
    int skipped = 0;
    double norm = -1.0;
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_optimizer_step(live(), grad_scale, &skipped, &norm);
    }
    check(st);
    return py::make_tuple(skipped != 0, norm);
  }
  void set_lr(double lr) { check(smp_optimizer_set_lr(live(), lr)); }
  void set_step(long long s) { check(smp_optimizer_set_step(live(), s)); }
  void gather_params() {
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_optimizer_gather_params(live());
    }
    check(st);
  }
  py::dict info() {
    size_t elems = 0, states = 0, pieces = 0, bytes = 0;
    long long steps = 0;
    check(smp_optimizer_shard_info(live(), &elems, &states, &pieces, &steps));
    check(smp_optimizer_state_bytes(live(), &bytes));
    py::list names;
    for (size_t i = 0; i < states; ++i) {
      const char *n = nullptr;
      check(smp_optimizer_state_name(live(), i, &n));
      names.append(n);
    }
    py::list plist;
    for (size_t i = 0; i < pieces; ++i) {
      smp_optimizer_piece_t p{};
      check(smp_optimizer_piece(live(), i, &p));
      plist.append(py::make_tuple(p.tensor_index, p.tensor_name, p.tensor_offset,
                                  p.shard_offset, p.length));
    }
    py::dict d;
    d["shard_elems"] = elems;
    d["states"] = names;
    d["pieces"] = plist;
    d["step"] = steps;
    d["state_bytes"] = bytes;
    return d;
  }
  void export_state(const std::string &name, py::handle out) {
    TensorView v = view_tensor(out, true, "output", py::none());
    need_f32(v);
    check(smp_optimizer_export_state(live(), name.c_str(), static_cast<float *>(v.data), v.count));
  }
  void import_state(const std::string &name, py::handle in) {
    TensorView v = view_tensor(in, false, "input", py::none());
    need_f32(v);
    check(smp_optimizer_import_state(live(), name.c_str(), static_cast<const float *>(v.data),
                                     v.count));
  }
  void close() {
    if (opt_ != nullptr) {
      smp_optimizer_t o = opt_;
      opt_ = nullptr;
      views_.clear();
      check(smp_optimizer_destroy(o));
    }
  }

 private:
  smp_optimizer_t live() const {
    if (opt_ == nullptr) raise_error(SMP_ERR_INVALID_ARGUMENT, "optimizer: already closed");
    return opt_;
  }
  static void need_f32(const TensorView &v) {
    if (v.dtype != SMP_FLOAT32 || v.cuda) {
      raise_error(SMP_ERR_INVALID_ARGUMENT, "optimizer state buffers are float32 host memory");
    }
  }
  smp_optimizer_t opt_ = nullptr;
  std::vector<std::string> names_;
  std::vector<TensorView> views_;
};

}  // namespace

void bind_optim(py::module_ &m) {
  py::class_<Optimizer>(m, "Optimizer")
      .def(py::init<const py::dict &, const py::list &>())
      .def("step", &Optimizer::step)
      .def("set_lr", &Optimizer::set_lr)
      .def("set_step", &Optimizer::set_step)
      .def("gather_params", &Optimizer::gather_params)
      .def("info", &Optimizer::info)
      .def("export_state", &Optimizer::export_state)
      .def("import_state", &Optimizer::import_state)
      .def("close", &Optimizer::close);
}

}  // namespace smp_py
