// smp.h's enums as one dict, `_smp.ENUMS[type][name] = value`, from which
// smp/__init__.py and smp/pipeline.py build theirs: the numbers are written
// once, in smp.h, and a renumbering there cannot leave Python behind.
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <utility>

#include "module.h"

namespace smp_py {

namespace {

py::dict table(std::initializer_list<std::pair<const char *, int>> entries) {
  py::dict d;
  for (const auto &[name, value] : entries) d[name] = value;
  return d;
}

}  // namespace

void bind_enums(py::module_ &m) {
  py::dict e;
  e["Status"] = table({{"SUCCESS", SMP_SUCCESS},
                       {"INVALID_ARGUMENT", SMP_ERR_INVALID_ARGUMENT},
                       {"NOT_INITIALIZED", SMP_ERR_NOT_INITIALIZED},
                       {"UNSUPPORTED", SMP_ERR_UNSUPPORTED},
                       {"BACKEND", SMP_ERR_BACKEND},
                       {"TIMEOUT", SMP_ERR_TIMEOUT},
                       {"PEER_FAILED", SMP_ERR_PEER_FAILED},
                       {"IO", SMP_ERR_IO},
                       {"CORRUPT", SMP_ERR_CORRUPT},
                       {"INTERNAL", SMP_ERR_INTERNAL}});
  e["Group"] = table({{"WORLD", SMP_WORLD},
                      {"PP", SMP_PP_GROUP},
                      {"TP", SMP_TP_GROUP},
                      {"DP", SMP_DP_GROUP},
                      {"RDP", SMP_RDP_GROUP},
                      {"MP", SMP_MP_GROUP}});
  e["Op"] = table({{"SUM", SMP_SUM}, {"AVG", SMP_AVG}, {"MAX", SMP_MAX}, {"MIN", SMP_MIN}, {"PROD", SMP_PROD}});
  // Keyed by torch's dtype names (torch.float32 ...).
  e["DType"] = table({{"float32", SMP_FLOAT32},
                      {"float64", SMP_FLOAT64},
                      {"float16", SMP_FLOAT16},
                      {"bfloat16", SMP_BFLOAT16},
                      {"int8", SMP_INT8},
                      {"uint8", SMP_UINT8},
                      {"int32", SMP_INT32},
                      {"int64", SMP_INT64}});
  // Keyed by the names smp.init's "pipeline" setting and smp-schedule take.
  e["Schedule"] = table({{"simple", SMP_SCHEDULE_SIMPLE},
                         {"interleaved", SMP_SCHEDULE_INTERLEAVED},
                         {"virtual", SMP_SCHEDULE_VIRTUAL},
                         {"zb-h1", SMP_SCHEDULE_ZB_H1},
                         {"zb-v", SMP_SCHEDULE_ZB_V}});
  e["PipeOp"] = table({{"FORWARD", SMP_PIPE_FORWARD},
                       {"BACKWARD", SMP_PIPE_BACKWARD},
                       {"SEND_ACTIVATION", SMP_PIPE_SEND_ACTIVATION},
                       {"RECV_ACTIVATION", SMP_PIPE_RECV_ACTIVATION},
                       {"SEND_GRADIENT", SMP_PIPE_SEND_GRADIENT},
                       {"RECV_GRADIENT", SMP_PIPE_RECV_GRADIENT},
                       {"BACKWARD_INPUT", SMP_PIPE_BACKWARD_INPUT},
                       {"BACKWARD_WEIGHT", SMP_PIPE_BACKWARD_WEIGHT}});
  m.attr("ENUMS") = e;
}

}  // namespace smp_py
