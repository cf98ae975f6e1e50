// smp._smp.pipeline_schedule: the runtime's schedule (smp.h "Schedules") as
// a list of (kind, microbatch, chunk, peer, batch) tuples, so the Python
// stage runner executes exactly what the C++ pipeline and its simulator
// (which proves it deadlock-free) define. A pure query: valid before init.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <tuple>
#include <utility>
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
