// smp._smp's pipeline section:
// - pipeline_run_step: one step of this rank's stage through the runtime's
//   executor (smp_pipeline_run_step), with Python callables as the stage's
//   forward and backward (smp.pipeline.PipelineRunner runs on it);
// - pipeline_schedule: the runtime's schedule (smp.h "Schedules") as a
//   list of (kind, microbatch, chunk, peer, batch) tuples, a pure query
//   (valid before init), as are pipeline_partition's splits and
//   pipeline_virtual_stage (where a chunk sits in the model).
//
// The step runs with the GIL released: the executor's exchanges wait on
// the neighbours, and other Python threads (data loading) may run
// meanwhile. Each callback takes the GIL back for the Python call. Tensors
// cross as DLPack capsules: the executor's tensors (received, or an
// earlier chunk's output when pp == 1) go to the callable as unconsumed
// "dltensor" capsules, which torch.utils.dlpack.from_dlpack takes over;
// what the callable returns (anything with __dlpack__, or such a capsule)
// is consumed and handed to the executor, which frees it with its deleter
// once sent (torch's deleter does not need the GIL).
//
// A callable that raises fails the step on every stage (smp.h); this rank
// then raises the callable's own exception (type, message, traceback),
// the others SmpError(PEER_FAILED) with its type and message.
#include <dlpack/dlpack.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "module.h"
#include "smp/smp.h"
#include "tensor_view.h"

namespace smp_py {

namespace {

constexpr const char *kCapsuleName = "dltensor";
constexpr const char *kUsedCapsuleName = "used_dltensor";

// The DLPack capsule protocol's destructor: a capsule still named
// "dltensor" was never consumed, so its tensor is freed here.
void capsule_destructor(PyObject *capsule) {
  if (PyCapsule_IsValid(capsule, kUsedCapsuleName)) return;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  auto *t = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (t == nullptr) {
    PyErr_WriteUnraisable(capsule);
  } else if (t->deleter != nullptr) {
    t->deleter(t);
  }
  PyErr_Restore(type, value, traceback);
}

// Takes ownership of t (freed here if the capsule cannot be made).
py::object to_capsule(DLManagedTensor *t) {
  PyObject *c = PyCapsule_New(t, kCapsuleName, capsule_destructor);
  if (c == nullptr) {
    if (t->deleter != nullptr) t->deleter(t);
    throw py::error_already_set();
  }
  return py::reinterpret_steal<py::object>(c);
}

// What a callable returned, as a DLManagedTensor the caller now owns.
DLManagedTensor *take_tensor(py::handle obj, const std::string &what) {
  py::object capsule;
  if (PyCapsule_CheckExact(obj.ptr())) {
    capsule = py::reinterpret_borrow<py::object>(obj);
  } else if (py::hasattr(obj, "__dlpack__") && py::hasattr(obj, "__dlpack_device__")) {
    py::tuple dev = obj.attr("__dlpack_device__")();
    const int type = dev[0].cast<int>();
    // The transport moves CUDA memory ordered after the legacy default
    // stream: the producer orders its pending work before it (stream 1).
    capsule = type == kDLCUDA || type == kDLCUDAManaged
                  ? obj.attr("__dlpack__")(py::arg("stream") = 1)
                  : obj.attr("__dlpack__")();
  } else {
    raise_error(SMP_ERR_INVALID_ARGUMENT,
                what + " returned a " +
                    std::string(py::str(py::type::handle_of(obj).attr("__name__"))) +
                    ", not a tensor (an object with __dlpack__) or None");
  }
  if (!PyCapsule_IsValid(capsule.ptr(), kCapsuleName))
    raise_error(SMP_ERR_INVALID_ARGUMENT, what + ": its DLPack capsule is not an unused 'dltensor'");
  auto *t = static_cast<DLManagedTensor *>(PyCapsule_GetPointer(capsule.ptr(), kCapsuleName));
  if (PyCapsule_SetName(capsule.ptr(), kUsedCapsuleName) != 0) throw py::error_already_set();
  return t;
}

// The Python side of one step: the callables, and the first exception one
// of them raised (re-raised on this rank once the step has ended).
struct Stage {
  py::function forward, backward;
  py::object backward_weight;  // None, or the W callable (split-backward schedules)
  std::optional<py::error_already_set> raised;
};

// One callable: forward / backward (out != nullptr) or backward_weight
// (in == out == nullptr, no tensor either way).
smp_status_t call(Stage &s, int which, int microbatch, int chunk, DLManagedTensor *in,
                  DLManagedTensor **out) noexcept {
  py::gil_scoped_acquire gil;
  const char *name = which == 0 ? "forward" : which == 1 ? "backward" : "backward_weight";
  try {
    if (which == 2) {
      s.backward_weight(microbatch, chunk);
      return SMP_SUCCESS;
    }
    py::object arg = in != nullptr ? to_capsule(in) : py::none();
    py::object r = (which == 0 ? s.forward : s.backward)(microbatch, chunk, arg);
    *out = r.is_none() ? nullptr : take_tensor(r, name);
    return SMP_SUCCESS;
  } catch (py::error_already_set &e) {
    // The status of an SmpError, else INTERNAL; the message names the
    // exception's type (SmpError's message is its own words).
    int status = SMP_ERR_INTERNAL;
    std::string message;
    try {
      py::object smp_error = py::module_::import("smp._errors").attr("SmpError");
      if (e.matches(smp_error)) {
        status = e.value().attr("status").cast<int>();
        message = "SmpError: " + e.value().attr("message").cast<std::string>();
      } else {
        message = e.type().attr("__name__").cast<std::string>() + ": " +
                  std::string(py::str(e.value()));
      }
    } catch (...) {
      message = e.what();
    }
    if (status >= 0 || status < SMP_ERR_INTERNAL) status = SMP_ERR_INTERNAL;
    if (!s.raised) s.raised = e;
    return smp_stage_error(static_cast<smp_status_t>(status), message.c_str());
  } catch (const std::exception &e) {
    return smp_stage_error(SMP_ERR_INTERNAL, e.what());
  } catch (...) {
    return smp_stage_error(SMP_ERR_INTERNAL, "unknown exception");
  }
}

smp_status_t forward_cb(void *user, int microbatch, int chunk, DLManagedTensor *input,
                        DLManagedTensor **output) {
  return call(*static_cast<Stage *>(user), 0, microbatch, chunk, input, output);
}

smp_status_t backward_cb(void *user, int microbatch, int chunk, DLManagedTensor *grad_output,
                         DLManagedTensor **grad_input) {
  return call(*static_cast<Stage *>(user), 1, microbatch, chunk, grad_output, grad_input);
}

smp_status_t backward_weight_cb(void *user, int microbatch, int chunk) {
  return call(*static_cast<Stage *>(user), 2, microbatch, chunk, nullptr, nullptr);
}

}  // namespace

void bind_pipeline(py::module_ &m) {
  // pipeline_run_step(kind, microbatches, chunks, active_microbatches,
  // group, forward, backward, recv_shape=None, recv_dtype=SMP_FLOAT32,
  // backward_weight=None):
  // forward(microbatch, chunk, capsule or None) -> tensor or None,
  // backward(microbatch, chunk, capsule or None) -> tensor or None,
  // backward_weight(microbatch, chunk) -> None (zb-h1 / zb-v: then
  // backward is the input-gradient half; smp.h smp_stage_fns_t).
  m.def("pipeline_run_step",
        [](int kind, int microbatches, int chunks, int active, int group, py::function forward,
           py::function backward, std::optional<std::vector<size_t>> recv_shape, int recv_dtype,
           py::object backward_weight) {
          Stage stage{std::move(forward), std::move(backward), std::move(backward_weight), std::nullopt};
          smp_stage_fns_t fns{};
          fns.forward = forward_cb;
          fns.backward = backward_cb;
          if (!stage.backward_weight.is_none()) fns.backward_weight = backward_weight_cb;
          fns.user = &stage;
          static const size_t kNoExtents = 0;  // recv_shape of a scalar: not NULL
          if (recv_shape) {
            fns.recv_shape = recv_shape->empty() ? &kNoExtents : recv_shape->data();
            fns.recv_ndim = static_cast<int>(recv_shape->size());
            fns.recv_dtype = static_cast<smp_dtype_t>(recv_dtype);
          }
          smp_status_t st;
          {
            py::gil_scoped_release nogil;
            st = smp_pipeline_run_step(static_cast<smp_schedule_t>(kind), microbatches, chunks,
                                       active, static_cast<smp_group_t>(group), &fns);
          }
          if (st == SMP_SUCCESS) return;
          if (stage.raised) throw *stage.raised;  // this rank's callable failed: its exception
          check(st);
        },
        py::arg("kind"), py::arg("microbatches"), py::arg("chunks"), py::arg("active_microbatches"),
        py::arg("group"), py::arg("forward"), py::arg("backward"),
        py::arg("recv_shape") = py::none(), py::arg("recv_dtype") = static_cast<int>(SMP_FLOAT32),
        py::arg("backward_weight") = py::none());
  m.def("pipeline_virtual_stage", [](int kind, int pp, int stage, int chunk) {
    int vs = -1;
    check(smp_pipeline_virtual_stage(static_cast<smp_schedule_t>(kind), pp, stage, chunk, &vs));
    return vs;
  });
  m.def("pipeline_schedule", [](int kind, int pp, int stage, int microbatches, int chunks,
                                int active_microbatches) {
    const auto k = static_cast<smp_schedule_t>(kind);
    size_t n = 0;
    check(smp_pipeline_schedule(k, pp, stage, microbatches, chunks, active_microbatches, nullptr,
                                0, &n));
    std::vector<smp_pipe_op_t> ops(n);
    check(smp_pipeline_schedule(k, pp, stage, microbatches, chunks, active_microbatches,
                                ops.data(), ops.size(), &n));
    std::vector<std::tuple<int, int, int, int, int>> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i)
      out.emplace_back(static_cast<int>(ops[i].kind), ops[i].microbatch, ops[i].chunk,
                       ops[i].peer, ops[i].batch);
    return out;
  });
  // smp_pipeline_partition: layers = [(compute, memory)] in execution
  // order -> ([(first, count, compute, memory, cost)] per stage, max_cost).
  m.def("pipeline_partition", [](const std::vector<std::pair<double, double>> &layers, int pp,
                                 double memory_weight, double memory_limit) {
    std::vector<smp_layer_cost_t> in;
    in.reserve(layers.size());
    for (const auto &l : layers) in.push_back(smp_layer_cost_t{l.first, l.second});
    std::vector<smp_stage_info_t> stages(pp > 0 ? static_cast<size_t>(pp) : 0);
    double max_cost = 0;
    check(smp_pipeline_partition(in.data(), in.size(), pp, memory_weight, memory_limit,
                                 stages.data(), &max_cost));
    std::vector<std::tuple<size_t, size_t, double, double, double>> out;
    for (const auto &s : stages)
      out.emplace_back(s.first_layer, s.num_layers, s.compute, s.memory, s.cost);
    return std::make_pair(out, max_cost);
  });
}

}  // namespace smp_py
