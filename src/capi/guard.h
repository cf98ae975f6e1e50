// Turns a C++ call into an smp_status_t for the extern "C" functions of
// every module (smp_api.cc here; pipeline_api.cc, optim_api.cc, ckpt_api.cc
// by their owners). Usage:
//
//   smp_status_t smp_something(int x) {
//     return smp::capi::guarded([&](smp::comm::Context &ctx) {
//       smp::capi::require(x > 0, "x must be positive");
//       ...
//     });
//   }
//
// guarded() checks that smp is initialized (else SMP_ERR_NOT_INITIALIZED),
// catches smp::Error (its status), std::bad_alloc (SMP_ERR_BACKEND, "out of
// memory"), any other exception (SMP_ERR_INTERNAL), and records the message
// as this thread's smp_last_error(). guarded_any() is the same without the
// initialization check (for calls valid before smp_init).
//
// guarded_event() is guarded() recorded in the timeline (SMP_TIMELINE) as
// one event named after the call, with its bytes and group: every runtime
// call of the C API goes through it or a trace::Scope, at this layer
// because capi is the one above comm, optim and ckpt alike. Off, it costs
// one load of a bool more than guarded().
#pragma once

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "comm/context.h"
#include "comm/groups.h"
#include "comm/reduce_op.h"
#include "comm/watchdog.h"
#include "common/dtype.h"
#include "common/error.h"
#include "smp/smp.h"
#include "topo/layout.h"
#include "trace/timeline.h"

namespace smp::capi {

// This thread's last failure message; smp_last_error() returns it.
void set_last_error(const std::string &message);
const char *last_error();

// Whether this process has seen no failure that may have left a peer
// inside a collective (timeout, peer failure, backend or internal error,
// out of memory) since it was loaded; argument, I/O and corrupt-data
// errors are found before communicating or agreed on, and do not count.
// smp_finalize writes the timeline only when every rank is healthy.
void set_unhealthy();
bool healthy();

inline smp_status_t failed_with(smp_status_t status) {
  if (status == SMP_ERR_TIMEOUT || status == SMP_ERR_PEER_FAILED || status == SMP_ERR_BACKEND ||
      status == SMP_ERR_INTERNAL)
    set_unhealthy();
  return status;
}

template <class F>
smp_status_t guarded_any(F &&fn) noexcept {
  try {
    fn();
    return SMP_SUCCESS;
  } catch (const smp::Error &e) {
    set_last_error(e.what());
    return failed_with(static_cast<smp_status_t>(e.status()));
  } catch (const std::bad_alloc &) {
    set_last_error("out of memory");
    return failed_with(SMP_ERR_BACKEND);
  } catch (const std::exception &e) {
    set_last_error(std::string("internal error: ") + e.what());
    return failed_with(SMP_ERR_INTERNAL);
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return failed_with(SMP_ERR_INTERNAL);
  }
}

template <class F>
smp_status_t guarded(F &&fn) noexcept {
  return guarded_any([&] { fn(smp::comm::Context::get()); });
}

// What a C call moves, for its timeline event: `count` elements of `dtype`
// over `group` (to `peer`, a group rank, for a send or a receive). bytes =
// count x element size, times the group's size when `whole_buffer`
// (reduce-scatter's and allgather's full buffer, NCCL-tests' convention).
// Holds references only: the args are worked out when the timeline is on.
struct Call {
  Call(size_t count_, const smp_dtype_t &dtype_, const smp_group_t &group_, bool whole_buffer_ = false,
       int peer_ = -1)
      : count(count_), dtype(dtype_), group(group_), whole_buffer(whole_buffer_), peer(peer_) {}
  size_t count;
  const smp_dtype_t &dtype;
  const smp_group_t &group;
  bool whole_buffer;
  int peer;
};
// Never throws: an enum the call will reject gives no bytes / group.
trace::Args event_args(const Call &call) noexcept;

// guarded(), recorded as timeline event `name` (see the top of this file).
template <class F>
smp_status_t guarded_event(const char *name, const Call &call, F &&fn) noexcept {
  if (!trace::enabled()) return guarded(fn);
  trace::Scope scope(name, event_args(call));
  return guarded(fn);
}

// For a user call's label (comm::CallScope, the watchdog's line): a group
// in words, without throwing for one the call will reject ("group 99");
// and a path in quotes, with control characters as '?'.
inline std::string group_word(const smp_group_t &g) {
  int v;
  std::memcpy(&v, &g, sizeof v);
  if (v >= 0 && v < static_cast<int>(topo::kAllGroups.size()))
    return topo::group_name(static_cast<topo::Group>(v));
  if (v >= SMP_GROUP_USER_BASE) return comm::group_label(static_cast<topo::Group>(v));
  return "group " + std::to_string(v);
}
inline std::string quoted(const char *text) {
  if (text == nullptr) return "NULL";
  std::string q = "\"";
  for (const char *c = text; *c; ++c) q += static_cast<unsigned char>(*c) < 0x20 ? '?' : *c;
  return q + "\"";
}

// Throws SMP_ERR_INVALID_ARGUMENT with `message` unless ok.
inline void require(bool ok, const std::string &message) {
  if (!ok) smp::invalid(message);
}

// Pointer argument `name` may be NULL only when nothing is read through it.
inline void require_ptr(const void *p, size_t count, const char *name) {
  if (p == nullptr && count > 0)
    smp::invalid(std::string(name) + " is NULL but count is " + std::to_string(count));
}

// The integer a C caller passed for an enum parameter. Read as bytes: in
// C++, loading an enum object that holds a value outside the enum's range
// (say dtype 99) is undefined behaviour, and C callers can pass anything.
template <class E>
int raw_enum(const E &e) {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// Checked conversions of the C enums; the message names the argument.
// Take the parameter by reference (no enum load) and pass it straight on.
inline DType to_dtype(const smp_dtype_t &e, const char *name = "dtype") {
  const int v = raw_enum(e);
  if (!dtype_valid(v))
    smp::invalid(std::string(name) + " " + std::to_string(v) +
                 " is not an smp_dtype_t (SMP_FLOAT32..SMP_INT64)");
  return static_cast<DType>(v);
}
inline comm::ReduceOp to_op(const smp_op_t &e, const char *name = "op") {
  const int v = raw_enum(e);
  if (!comm::reduce_op_valid(v))
    smp::invalid(std::string(name) + " " + std::to_string(v) +
                 " is not an smp_op_t (SMP_SUM, SMP_AVG, SMP_MAX, SMP_MIN, SMP_PROD)");
  return static_cast<comm::ReduceOp>(v);
}
// A layout group or a created one's handle (>= SMP_GROUP_USER_BASE; whether
// it names a live group of this rank is Context::group's to check).
static_assert(SMP_GROUP_USER_BASE == comm::kFirstUserGroup, "smp.h and comm/groups.h agree");
inline topo::Group to_group(const smp_group_t &e, const char *name = "group") {
  const int i = raw_enum(e);
  if ((i < 0 || i >= static_cast<int>(topo::kAllGroups.size())) && i < SMP_GROUP_USER_BASE)
    smp::invalid(std::string(name) + " " + std::to_string(i) +
                 " is not an smp_group_t (SMP_WORLD..SMP_MP_GROUP, or a handle from smp_group_create)");
  return static_cast<topo::Group>(i);
}

}  // namespace smp::capi
