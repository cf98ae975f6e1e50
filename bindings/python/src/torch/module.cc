// smp._torch: the "smp" torch.distributed backend's process groups, made
// from Python by smp.distributed (which registers the backend and decides
// which smp group each process group runs on).
#include <torch/csrc/utils/pybind.h>  // c10::intrusive_ptr as a pybind11 holder

#include <string>
#include <vector>

#include "process_group_smp.h"

namespace py = pybind11;

namespace {

void check(smp_status_t status, const char *what) {
  if (status != SMP_SUCCESS)
    throw std::runtime_error(std::string("smp backend: ") + what + ": " +
                             smp_status_string(status) + ": " + smp_last_error());
}

}  // namespace

PYBIND11_MODULE(_torch, m) {
  m.doc() = "The \"smp\" torch.distributed backend (use smp.distributed, not this module)";
  // torch's ProcessGroup type must be registered before one is returned.
  py::module_::import("torch.distributed");

  m.def(
      "process_group",
      [](int group, bool owned) -> c10::intrusive_ptr<c10d::ProcessGroup> {
        return c10::make_intrusive<smp_torch::ProcessGroupSmp>(static_cast<smp_group_t>(group),
                                                               owned);
      },
      py::arg("group"), py::arg("owned"),
      "A ProcessGroup over smp group `group` (an smp_group_t); owned: destroy the group with it.");
  m.def(
      "group_create",
      [](const std::vector<int> &world_ranks) {
        smp_group_t g{};
        check(smp_group_create(world_ranks.data(), static_cast<int>(world_ranks.size()), &g),
              "new_group");
        return static_cast<int>(g);
      },
      py::arg("world_ranks"), py::call_guard<py::gil_scoped_release>(),
      "smp_group_create: collective over the listed world ranks.");
  m.def(
      "group_set_timeout",
      [](int group, double seconds) {
        check(smp_group_set_timeout(static_cast<smp_group_t>(group), seconds), "timeout");
      },
      py::arg("group"), py::arg("seconds"));
}
