#include "optim/placement.h"

#include "common/error.h"

namespace smp::optim {

namespace {

std::string where(int device) {
  return device < 0 ? std::string("host memory") : "CUDA device " + std::to_string(device);
}

}  // namespace

Placement place_tensors(const std::vector<TensorBinding> &tensors, const DeviceOf &device_of) {
  bool first = true;
  int device = -1;
  std::string first_name;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorBinding &t = tensors[i];
    if (t.spec.count == 0) continue;
    const void *ptrs[2] = {t.param, t.grad};
    for (int k = 0; k < 2; ++k) {
      const int d = device_of(ptrs[k]);
      const std::string name = "tensor #" + std::to_string(i) + " ('" + t.spec.name + "')'s " +
                               (k == 0 ? "parameter" : "gradient");
      if (first) {
        first = false;
        device = d;
        first_name = name;
      } else if (d != device) {
        invalid("optimizer: " + name + " is in " + where(d) + " but " + first_name + " is in " +
                where(device) + "; every parameter and gradient must be in host memory, or all on "
                "one CUDA device");
      }
    }
  }
  return device < 0 ? Placement{} : Placement{Memory::Cuda, device};
}

}  // namespace smp::optim
