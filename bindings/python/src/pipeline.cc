// smp._smp.pipeline_schedule: the runtime's schedule (smp.h "Schedules") as
// a list of (kind, microbatch, chunk, peer, batch) tuples, so the Python
// stage runner executes exactly what the C++ pipeline and its simulator
// (which proves it deadlock-free) define. A pure query: valid before init.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <tuple>
#include <vector>

#include "module.h"
#include "smp/smp.h"
#include "tensor_view.h"

namespace smp_py {

void bind_pipeline(py::module_ &m) {
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
}

}  // namespace smp_py
