// Shared pieces of the _smp extension: the request wrapper and the
// per-section binders (one file per C API section).
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <vector>

#include "smp/smp.h"
#include "tensor_view.h"

namespace smp_py {

// A non-blocking operation. Holds what keeps its buffers alive (the views
// of a collective's tensors, the transport's DLPack arguments) until it
// completes, then drops it with the GIL held; destroying an unfinished
// request waits for it (freeing memory under an operation in flight would
// corrupt it).
class Request {
 public:
  Request(smp_request_t req, std::vector<TensorView> views);
  Request(smp_request_t req, std::shared_ptr<void> keep_alive);
  ~Request();
  Request(const Request &) = delete;
  Request &operator=(const Request &) = delete;
  void wait();
  bool test();

 private:
  void finish();  // the request is gone (smp_wait / smp_test freed it)
  smp_request_t req_;
  std::shared_ptr<void> keep_alive_;
};

void bind_core(py::module_ &m);
void bind_enums(py::module_ &m);  // enums.cc
void bind_collectives(py::module_ &m);
void bind_p2p(py::module_ &m);
void bind_requests(py::module_ &m);
void bind_timeline(py::module_ &m);
void bind_optim(py::module_ &m);
void bind_ckpt(py::module_ &m);
void bind_pipeline(py::module_ &m);
void bind_transport(py::module_ &m);

}  // namespace smp_py
