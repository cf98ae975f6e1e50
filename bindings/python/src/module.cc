// smp._smp: the C API (include/smp/smp.h) for Python. Thin on purpose:
// smp/__init__.py gives it the documented names and defaults. Tensors are
// borrowed zero-copy (tensor_view.h); every blocking call releases the GIL
// so other Python threads (data loading, a second communicator user) run.
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

int group_size(int group) {
  int n = 0;
  check(smp_size(static_cast<smp_group_t>(group), &n));
  return n;
}

int group_rank(int group) {
  int r = 0;
  check(smp_rank(static_cast<smp_group_t>(group), &r));
  return r;
}

void same_kind(const TensorView &a, const TensorView &b, const char *op) {
  if (a.dtype != b.dtype) {
    raise_error(SMP_ERR_INVALID_ARGUMENT, std::string(op) + ": input is " + dtype_name(a.dtype) +
                                              " but output is " + dtype_name(b.dtype));
  }
  if (a.cuda != b.cuda) {
    raise_error(SMP_ERR_INVALID_ARGUMENT,
                std::string(op) + ": input and output must both be host or both be CUDA memory");
  }
}

// reduce_scatter / allgather: the large buffer holds group-size blocks.
void check_blocks(const TensorView &large, const TensorView &block, int group, const char *op,
                  const char *large_name) {
  const size_t n = static_cast<size_t>(group_size(group));
  if (large.count != block.count * n) {
    raise_error(SMP_ERR_INVALID_ARGUMENT,
                std::string(op) + ": " + large_name + " has " + std::to_string(large.count) +
                    " elements, expected group size " + std::to_string(n) + " x " +
                    std::to_string(block.count));
  }
}

TensorView in(py::handle t, py::handle stream) { return view_tensor(t, false, "input", stream); }
TensorView out(py::handle t, py::handle stream) { return view_tensor(t, true, "output", stream); }

}  // namespace

Request::Request(smp_request_t req, std::vector<TensorView> views)
    : Request(req, std::make_shared<std::vector<TensorView>>(std::move(views))) {}

Request::Request(smp_request_t req, std::shared_ptr<void> keep_alive)
    : req_(req), keep_alive_(std::move(keep_alive)) {}

Request::~Request() {
  // The buffers must outlive the operation: finish it before dropping them.
  if (req_ != nullptr) {
    py::gil_scoped_release nogil;
    smp_wait(req_);
  }
}

void Request::finish() {
  req_ = nullptr;
  keep_alive_.reset();
}

void Request::wait() {
  if (req_ == nullptr) return;
  smp_status_t st;
  {
    py::gil_scoped_release nogil;
    st = smp_wait(req_);
  }
  finish();  // smp_wait frees it, also on failure
  check(st);
}

bool Request::test() {
  if (req_ == nullptr) return true;
  int done = 0;
  const smp_status_t st = smp_test(req_, &done);
  // On failure smp_test reports the operation's error; the request is
  // finished and freed either way.
  if (st != SMP_SUCCESS || done) finish();
  check(st);
  return done != 0;
}

void bind_core(py::module_ &m) {
  m.def("init", [](int pp, int tp, py::object placement, double timeout, int check_args) {
    smp_config_t cfg = SMP_CONFIG_INIT;
    cfg.pp_size = pp;
    cfg.tp_size = tp;
    std::string place;
    if (!placement.is_none()) {
      place = placement.cast<std::string>();
      cfg.placement = place.c_str();
    }
    cfg.timeout_seconds = timeout;
    cfg.check = check_args;
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_init(&cfg);
    }
    check(st);
  });
  m.def("finalize", [] {
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_finalize();
    }
    check(st);
  });
  m.def("rank", &group_rank);
  m.def("size", &group_size);
  m.def("local_rank", [] {
    int r = 0;
    check(smp_local_rank(&r));
    return r;
  });
  m.def("local_size", [] {
    int n = 0;
    check(smp_local_size(&n));
    return n;
  });
  m.def("device", [] {
    int d = -1;
    check(smp_device(&d));
    return d;
  });
  m.def("version", [] {
    int a = 0, b = 0, c = 0;
    smp_version(&a, &b, &c);
    return py::make_tuple(a, b, c);
  });
  m.def("status_string", [](int s) { return std::string(smp_status_string(static_cast<smp_status_t>(s))); });
  m.def("last_error", [] { return std::string(smp_last_error()); });
  m.def("view_info", [](py::handle t, bool writable, py::handle stream) {
    // For tests: what the binding sees of a tensor (no communication).
    TensorView v = view_tensor(t, writable, "tensor", stream);
    return py::make_tuple(reinterpret_cast<uintptr_t>(v.data), v.count, static_cast<int>(v.dtype),
                          v.cuda, v.device_id);
  });
}

void bind_collectives(py::module_ &m) {
  m.def("allreduce", [](py::handle t, int op, int group, py::handle stream) {
    TensorView v = out(t, stream);
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_allreduce(v.data, v.data, v.count, v.dtype, static_cast<smp_op_t>(op),
                         static_cast<smp_group_t>(group), v.stream);
    }
    check(st);
  });
  m.def("reduce_scatter", [](py::handle i, py::handle o, int op, int group, py::handle stream) {
    TensorView vi = in(i, stream), vo = out(o, stream);
    same_kind(vi, vo, "reduce_scatter");
    check_blocks(vi, vo, group, "reduce_scatter", "input");
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_reduce_scatter(vi.data, vo.data, vo.count, vo.dtype, static_cast<smp_op_t>(op),
                              static_cast<smp_group_t>(group), vo.stream);
    }
    check(st);
  });
  m.def("allgather", [](py::handle i, py::handle o, int group, py::handle stream) {
    TensorView vi = in(i, stream), vo = out(o, stream);
    same_kind(vi, vo, "allgather");
    check_blocks(vo, vi, group, "allgather", "output");
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_allgather(vi.data, vo.data, vi.count, vi.dtype, static_cast<smp_group_t>(group),
                         vo.stream);
    }
    check(st);
  });
  m.def("broadcast", [](py::handle t, int root, int group, py::handle stream) {
    TensorView v = out(t, stream);
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_broadcast(v.data, v.count, v.dtype, root, static_cast<smp_group_t>(group), v.stream);
    }
    check(st);
  });
  m.def("gatherv", [](py::handle i, py::handle o, py::handle counts, int root, int group,
                      py::handle stream) {
    TensorView vi = in(i, stream);
    const bool is_root = group_rank(group) == root;
    TensorView vo;
    std::vector<size_t> c;
    if (is_root) {
      if (o.is_none() || counts.is_none()) {
        raise_error(SMP_ERR_INVALID_ARGUMENT, "gatherv: the root needs an output and counts");
      }
      vo = out(o, stream);
      same_kind(vi, vo, "gatherv");
      c = counts.cast<std::vector<size_t>>();
      if (c.size() != static_cast<size_t>(group_size(group))) {
        raise_error(SMP_ERR_INVALID_ARGUMENT, "gatherv: counts needs one entry per rank of the group");
      }
      size_t total = 0;
      for (size_t x : c) total += x;
      if (total != vo.count) {
        raise_error(SMP_ERR_INVALID_ARGUMENT,
                    "gatherv: output has " + std::to_string(vo.count) + " elements, counts sum to " +
                        std::to_string(total));
      }
    }
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_gatherv(vi.data, vi.count, is_root ? vo.data : nullptr, is_root ? c.data() : nullptr,
                       vi.dtype, root, static_cast<smp_group_t>(group), vi.stream);
    }
    check(st);
  });
  m.def("reduce", [](py::handle i, py::handle o, int op, int root, int group, py::handle stream) {
    TensorView vi = in(i, stream);
    TensorView vo;
    const bool is_root = group_rank(group) == root;
    if (is_root) {
      if (o.is_none()) raise_error(SMP_ERR_INVALID_ARGUMENT, "reduce: the root needs an output");
      vo = out(o, stream);
      same_kind(vi, vo, "reduce");
      if (vo.count != vi.count)
        raise_error(SMP_ERR_INVALID_ARGUMENT, "reduce: output has " + std::to_string(vo.count) +
                                                  " elements, input " + std::to_string(vi.count));
    }
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_reduce(vi.data, is_root ? vo.data : nullptr, vi.count, vi.dtype, static_cast<smp_op_t>(op), root,
                      static_cast<smp_group_t>(group), vi.stream);
    }
    check(st);
  });
  m.def("scatterv", [](py::handle i, py::handle counts, py::handle o, int root, int group,
                       py::handle stream) {
    TensorView vo = out(o, stream);
    const bool is_root = group_rank(group) == root;
    TensorView vi;
    std::vector<size_t> c;
    if (is_root) {
      if (i.is_none() || counts.is_none())
        raise_error(SMP_ERR_INVALID_ARGUMENT, "scatterv: the root needs an input and counts");
      vi = in(i, stream);
      same_kind(vi, vo, "scatterv");
      c = counts.cast<std::vector<size_t>>();
      if (c.size() != static_cast<size_t>(group_size(group)))
        raise_error(SMP_ERR_INVALID_ARGUMENT, "scatterv: counts needs one entry per rank of the group");
      size_t total = 0;
      for (size_t x : c) total += x;
      if (total != vi.count)
        raise_error(SMP_ERR_INVALID_ARGUMENT, "scatterv: input has " + std::to_string(vi.count) +
                                                  " elements, counts sum to " + std::to_string(total));
    }
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_scatterv(is_root ? vi.data : nullptr, is_root ? c.data() : nullptr, vo.data, vo.count, vo.dtype,
                        root, static_cast<smp_group_t>(group), vo.stream);
    }
    check(st);
  });
  // Blocks packed in rank order (displacements are the running sums).
  m.def("alltoallv", [](py::handle i, py::handle send_counts, py::handle o, py::handle recv_counts, int group,
                        py::handle stream) {
    TensorView vi = in(i, stream), vo = out(o, stream);
    same_kind(vi, vo, "alltoallv");
    const size_t n = static_cast<size_t>(group_size(group));
    auto counts = [&](py::handle h, size_t have, const char *name, const char *buf) {
      std::vector<size_t> c = h.cast<std::vector<size_t>>();
      if (c.size() != n)
        raise_error(SMP_ERR_INVALID_ARGUMENT, std::string("alltoallv: ") + name + " needs one entry per rank of the group");
      size_t total = 0;
      for (size_t x : c) total += x;
      if (total != have)
        raise_error(SMP_ERR_INVALID_ARGUMENT, std::string("alltoallv: ") + buf + " has " + std::to_string(have) +
                                                  " elements, " + name + " sum to " + std::to_string(total));
      return c;
    };
    const std::vector<size_t> sc = counts(send_counts, vi.count, "send_counts", "input");
    const std::vector<size_t> rc = counts(recv_counts, vo.count, "recv_counts", "output");
    std::vector<size_t> sd(n), rd(n);
    for (size_t p = 1; p < n; ++p) {
      sd[p] = sd[p - 1] + sc[p - 1];
      rd[p] = rd[p - 1] + rc[p - 1];
    }
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_alltoallv(vi.data, sc.data(), sd.data(), vo.data, rc.data(), rd.data(), vo.dtype,
                         static_cast<smp_group_t>(group), vo.stream);
    }
    check(st);
  });
  m.def("group_create", [](const std::vector<int> &ranks) {
    smp_group_t g = SMP_WORLD;
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_group_create(ranks.data(), static_cast<int>(ranks.size()), &g);
    }
    check(st);
    return static_cast<int>(g);
  });
  m.def("group_destroy", [](int group) {
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_group_destroy(static_cast<smp_group_t>(group));
    }
    check(st);
  });
  m.def("group_set_timeout", [](int group, double seconds) {
    check(smp_group_set_timeout(static_cast<smp_group_t>(group), seconds));
  });
  m.def("barrier", [](int group) {
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_barrier(static_cast<smp_group_t>(group));
    }
    check(st);
  });
}

void bind_p2p(py::module_ &m) {
  m.def("send", [](py::handle t, int peer, int group, int tag, py::handle stream) {
    TensorView v = in(t, stream);
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_send(v.data, v.count, v.dtype, peer, static_cast<smp_group_t>(group), tag, v.stream);
    }
    check(st);
  });
  m.def("recv", [](py::handle t, int peer, int group, int tag, py::handle stream) {
    TensorView v = out(t, stream);
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_recv(v.data, v.count, v.dtype, peer, static_cast<smp_group_t>(group), tag, v.stream);
    }
    check(st);
  });
  m.def("recv_any", [](py::handle t, int group, int tag, py::handle stream) {
    TensorView v = out(t, stream);
    int source = -1;
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_recv_any(v.data, v.count, v.dtype, static_cast<smp_group_t>(group), tag, &source, v.stream);
    }
    check(st);
    return source;
  });
}

void bind_timeline(py::module_ &m) {
  m.def("timeline_begin", [](const std::string &name, int microbatch, int chunk) {
    check(smp_timeline_begin(name.c_str(), microbatch, chunk));
  });
  m.def("timeline_end", [] { check(smp_timeline_end()); });
  m.def("timeline_write", [] {
    smp_status_t st;
    {
      py::gil_scoped_release nogil;
      st = smp_timeline_write();
    }
    check(st);
  });
}

void bind_requests(py::module_ &m) {
  py::class_<Request>(m, "Request")
      .def("wait", &Request::wait, "Block until the operation completes.")
      .def("test", &Request::test, "True once the operation has completed.");

  m.def("isend", [](py::handle t, int peer, int group, int tag, py::handle stream) {
    TensorView v = in(t, stream);
    smp_request_t r = nullptr;
    check(smp_isend(v.data, v.count, v.dtype, peer, static_cast<smp_group_t>(group), tag, v.stream, &r));
    return std::make_unique<Request>(r, std::vector<TensorView>{std::move(v)});
  });
  m.def("irecv", [](py::handle t, int peer, int group, int tag, py::handle stream) {
    TensorView v = out(t, stream);
    smp_request_t r = nullptr;
    check(smp_irecv(v.data, v.count, v.dtype, peer, static_cast<smp_group_t>(group), tag, v.stream, &r));
    return std::make_unique<Request>(r, std::vector<TensorView>{std::move(v)});
  });
  m.def("iallreduce", [](py::handle t, int op, int group, py::handle stream) {
    TensorView v = out(t, stream);
    smp_request_t r = nullptr;
    check(smp_iallreduce(v.data, v.data, v.count, v.dtype, static_cast<smp_op_t>(op),
                         static_cast<smp_group_t>(group), v.stream, &r));
    return std::make_unique<Request>(r, std::vector<TensorView>{std::move(v)});
  });
  m.def("ireduce_scatter", [](py::handle i, py::handle o, int op, int group, py::handle stream) {
    TensorView vi = in(i, stream), vo = out(o, stream);
    same_kind(vi, vo, "reduce_scatter");
    check_blocks(vi, vo, group, "reduce_scatter", "input");
    smp_request_t r = nullptr;
    check(smp_ireduce_scatter(vi.data, vo.data, vo.count, vo.dtype, static_cast<smp_op_t>(op),
                              static_cast<smp_group_t>(group), vo.stream, &r));
    return std::make_unique<Request>(r, std::vector<TensorView>{std::move(vi), std::move(vo)});
  });
  m.def("iallgather", [](py::handle i, py::handle o, int group, py::handle stream) {
    TensorView vi = in(i, stream), vo = out(o, stream);
    same_kind(vi, vo, "allgather");
    check_blocks(vo, vi, group, "allgather", "output");
    smp_request_t r = nullptr;
    check(smp_iallgather(vi.data, vo.data, vi.count, vi.dtype, static_cast<smp_group_t>(group),
                         vo.stream, &r));
    return std::make_unique<Request>(r, std::vector<TensorView>{std::move(vi), std::move(vo)});
  });
}

}  // namespace smp_py

PYBIND11_MODULE(_smp, m) {
  m.doc() = "smp C API (use the `smp` package, not this module directly)";
  smp_py::bind_enums(m);
  smp_py::bind_core(m);
  smp_py::bind_collectives(m);
  smp_py::bind_p2p(m);
  smp_py::bind_requests(m);
  smp_py::bind_timeline(m);
  smp_py::bind_optim(m);
  smp_py::bind_ckpt(m);
  smp_py::bind_pipeline(m);
  smp_py::bind_transport(m);
}
