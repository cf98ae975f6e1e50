// Shared pieces of the _smp extension: the request wrapper and the
// per-section binders (one file per C API section).
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "smp/smp.h"
#include "tensor_view.h"

namespace smp_py {

// A non-blocking operation. Holds the views of its buffers so the memory
// stays alive until it completes; destroying an unfinished request waits
// for it (freeing memory under an operation in flight would corrupt it).
class Request {
 public:
  Request(smp_request_t req, std::vector<TensorView> views);
  ~Request();
  Request(const Request &) = delete;
  Request &operator=(const Request &) = delete;
  void wait();
  bool test();

 private:
  smp_request_t req_;
  std::vector<TensorView> views_;
};

void bind_core(py::module_ &m);
void bind_collectives(py::module_ &m);
void bind_p2p(py::module_ &m);
void bind_requests(py::module_ &m);
void bind_timeline(py::module_ &m);
void bind_optim(py::module_ &m);
void bind_ckpt(py::module_ &m);
void bind_pipeline(py::module_ &m);
void bind_transport(py::module_ &m);

}  // namespace smp_py
