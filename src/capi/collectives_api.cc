// The C API's collectives: enum checks here, everything else in
// smp::comm::Communicator (which validates before communicating).
#include "capi/guard.h"
#include "capi/request.h"

using smp::capi::Call;
using smp::capi::guarded_event;
using smp::capi::to_dtype;
using smp::capi::to_group;
using smp::capi::to_op;

namespace {

void require_request(smp_request_t *request, const char *fn) {
  smp::capi::require(request != nullptr, std::string(fn) + ": request is NULL");
}

const smp_dtype_t kBytes = SMP_UINT8;  // a barrier's Call: nothing moved

}  // namespace

extern "C" {

smp_status_t smp_allreduce(const void *sendbuf, void *recvbuf, size_t count, smp_dtype_t dtype,
                           smp_op_t op, smp_group_t group, void *stream) {
  return guarded_event("allreduce", Call(count, dtype, group), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).allreduce(sendbuf, recvbuf, count, to_dtype(dtype), to_op(op), stream);
  });
}

smp_status_t smp_reduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                smp_dtype_t dtype, smp_op_t op, smp_group_t group, void *stream) {
  return guarded_event("reduce_scatter", Call(recvcount, dtype, group, true), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).reduce_scatter(sendbuf, recvbuf, recvcount, to_dtype(dtype), to_op(op), stream);
  });
}

smp_status_t smp_allgather(const void *sendbuf, void *recvbuf, size_t sendcount, smp_dtype_t dtype,
                           smp_group_t group, void *stream) {
  return guarded_event("allgather", Call(sendcount, dtype, group, true), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).allgather(sendbuf, recvbuf, sendcount, to_dtype(dtype), stream);
  });
}

smp_status_t smp_broadcast(void *buf, size_t count, smp_dtype_t dtype, int root, smp_group_t group,
                           void *stream) {
  return guarded_event("broadcast", Call(count, dtype, group), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).broadcast(buf, count, to_dtype(dtype), root, stream);
  });
}

smp_status_t smp_gatherv(const void *sendbuf, size_t sendcount, void *recvbuf,
                         const size_t *recvcounts, smp_dtype_t dtype, int root, smp_group_t group,
                         void *stream) {
  return guarded_event("gatherv", Call(sendcount, dtype, group), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).gatherv(sendbuf, sendcount, recvbuf, recvcounts, to_dtype(dtype), root, stream);
  });
}

smp_status_t smp_reduce(const void *sendbuf, void *recvbuf, size_t count, smp_dtype_t dtype, smp_op_t op,
                        int root, smp_group_t group, void *stream) {
  return guarded_event("reduce", Call(count, dtype, group), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).reduce(sendbuf, recvbuf, count, to_dtype(dtype), to_op(op), root, stream);
  });
}

smp_status_t smp_scatterv(const void *sendbuf, const size_t *sendcounts, void *recvbuf, size_t recvcount,
                          smp_dtype_t dtype, int root, smp_group_t group, void *stream) {
  return guarded_event("scatterv", Call(recvcount, dtype, group), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).scatterv(sendbuf, sendcounts, recvbuf, recvcount, to_dtype(dtype), root, stream);
  });
}

smp_status_t smp_alltoallv(const void *sendbuf, const size_t *sendcounts, const size_t *sdispls,
                           void *recvbuf, const size_t *recvcounts, const size_t *rdispls, smp_dtype_t dtype,
                           smp_group_t group, void *stream) {
  // The timeline's bytes: what this rank sends.
  size_t total = 0;
  if (sendcounts != nullptr && smp::trace::enabled())
    if (smp::comm::Context *ctx = smp::comm::Context::current())
      if (smp::comm::Communicator *c = ctx->find_group(smp::capi::raw_enum(group)))
        for (int r = 0; r < c->size(); ++r) total += sendcounts[r];
  return guarded_event("alltoallv", Call(total, dtype, group), [&](smp::comm::Context &ctx) {
    ctx.group(to_group(group)).alltoallv(sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls,
                                         to_dtype(dtype), stream);
  });
}

smp_status_t smp_barrier(smp_group_t group) {
  return guarded_event("barrier", Call(0, kBytes, group),
                       [&](smp::comm::Context &ctx) { ctx.group(to_group(group)).barrier(); });
}

smp_status_t smp_iallreduce(const void *sendbuf, void *recvbuf, size_t count, smp_dtype_t dtype,
                            smp_op_t op, smp_group_t group, void *stream, smp_request_t *request) {
  const Call call(count, dtype, group);
  return guarded_event("iallreduce", call, [&](smp::comm::Context &ctx) {
    require_request(request, "smp_iallreduce");
    smp::capi::hand_out(ctx.group(to_group(group)).iallreduce(sendbuf, recvbuf, count, to_dtype(dtype),
                                                               to_op(op), stream),
                        request, call);
  });
}

smp_status_t smp_ireduce_scatter(const void *sendbuf, void *recvbuf, size_t recvcount,
                                 smp_dtype_t dtype, smp_op_t op, smp_group_t group, void *stream,
                                 smp_request_t *request) {
  const Call call(recvcount, dtype, group, true);
  return guarded_event("ireduce_scatter", call, [&](smp::comm::Context &ctx) {
    require_request(request, "smp_ireduce_scatter");
    smp::capi::hand_out(ctx.group(to_group(group)).ireduce_scatter(sendbuf, recvbuf, recvcount,
                                                                    to_dtype(dtype), to_op(op), stream),
                        request, call);
  });
}

smp_status_t smp_iallgather(const void *sendbuf, void *recvbuf, size_t sendcount, smp_dtype_t dtype,
                            smp_group_t group, void *stream, smp_request_t *request) {
  const Call call(sendcount, dtype, group, true);
  return guarded_event("iallgather", call, [&](smp::comm::Context &ctx) {
    require_request(request, "smp_iallgather");
    smp::capi::hand_out(ctx.group(to_group(group)).iallgather(sendbuf, recvbuf, sendcount,
                                                               to_dtype(dtype), stream),
                        request, call);
  });
}

}  // extern "C"
