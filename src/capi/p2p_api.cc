// The C API's point-to-point operations and requests.
#include "capi/guard.h"
#include "capi/request.h"

using smp::capi::Call;
using smp::capi::guarded_any;
using smp::capi::guarded_event;
using smp::capi::to_dtype;
using smp::capi::to_group;

extern "C" {

smp_status_t smp_send(const void *buf, size_t count, smp_dtype_t dtype, int peer, smp_group_t group,
                      int tag, void *stream) {
  return guarded_event("send", Call(count, dtype, group, false, peer), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).send(buf, count, to_dtype(dtype), peer, tag, stream);
  });
}

smp_status_t smp_recv(void *buf, size_t count, smp_dtype_t dtype, int peer, smp_group_t group,
                      int tag, void *stream) {
  return guarded_event("recv", Call(count, dtype, group, false, peer), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).recv(buf, count, to_dtype(dtype), peer, tag, stream);
  });
}

smp_status_t smp_recv_any(void *buf, size_t count, smp_dtype_t dtype, smp_group_t group, int tag,
                          int *source, void *stream) {
  return guarded_event("recv_any", Call(count, dtype, group), [&](smp::comm::Context &ctx) {
    smp::capi::require(source != nullptr, "smp_recv_any: source is NULL");
    *source = -1;
    *source = ctx.group(to_group(group)).recv_any(buf, count, to_dtype(dtype), tag, stream);
  });
}

smp_status_t smp_isend(const void *buf, size_t count, smp_dtype_t dtype, int peer, smp_group_t group,
                       int tag, void *stream, smp_request_t *request) {
  const Call call(count, dtype, group, false, peer);
  return guarded_event("isend", call, [&](smp::comm::Context &ctx) {
    smp::capi::require(request != nullptr, "smp_isend: request is NULL");
    smp::capi::hand_out(ctx.group(to_group(group)).isend(buf, count, to_dtype(dtype), peer, tag, stream),
                        request, call);
  });
}

smp_status_t smp_irecv(void *buf, size_t count, smp_dtype_t dtype, int peer, smp_group_t group,
                       int tag, void *stream, smp_request_t *request) {
  const Call call(count, dtype, group, false, peer);
  return guarded_event("irecv", call, [&](smp::comm::Context &ctx) {
    smp::capi::require(request != nullptr, "smp_irecv: request is NULL");
    smp::capi::hand_out(ctx.group(to_group(group)).irecv(buf, count, to_dtype(dtype), peer, tag, stream),
                        request, call);
  });
}

// Requests outlive nothing: a request created before smp_finalize was
// completed by it (finalize drains), so wait/test only need the object.
smp_status_t smp_wait(smp_request_t request) {
  return guarded_any([&] {
    smp::capi::require(request != nullptr, "smp_wait: request is NULL");
    std::unique_ptr<smp_request> owned(request);  // freed also on failure
    smp::trace::Scope scope("wait", owned->event);
    // A request posted inside a labelled call (the deferred sends of
    // smp_exchange_tensors_deferred) names it while it is waited for.
    smp::comm::CallScope call([&] {
      return owned->call.empty() ? std::string() : "smp_wait(request of " + owned->call + ")";
    });
    owned->req->wait();
  });
}

smp_status_t smp_test(smp_request_t request, int *done) {
  return guarded_any([&] {
    smp::capi::require(request != nullptr, "smp_test: request is NULL");
    smp::capi::require(done != nullptr, "smp_test: done is NULL");
    *done = 0;
    // Only the poll that finds the request complete (or failed) becomes a
    // timeline event: a polling loop would otherwise flood the trace with
    // near-empty ones.
    namespace tl = smp::trace;
    const double start = tl::enabled() ? tl::now_us() : -1;
    const auto finish = [&] {
      *done = 1;
      if (start >= 0) tl::record("test", start, tl::now_us(), request->event);
      delete request;  // complete (or failed): freed either way
    };
    bool complete = false;
    try {
      complete = request->req->test();
    } catch (...) {
      finish();
      throw;
    }
    if (complete) finish();
  });
}

}  // extern "C"
