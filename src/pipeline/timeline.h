// Timeline recording (SMP_TIMELINE=path, set by smprun --timeline): every
// rank records the pipeline operations it runs (forward / backward of the
// executor or marked by the framework through the C API, tensor sends,
// receives and exchanges) as Chrome-trace complete events, and
// write_timeline() gathers every rank's events into one Chrome-trace JSON
// file (loads in Perfetto and chrome://tracing), one track (pid) per rank.
//
// The C API records every runtime call besides (capi/guard.h: collectives,
// sends and receives, posts and waits, the sharded optimizer's step,
// checkpoint save / load). Each event carries a category ("cat" in the
// file): "runtime" for those and the tensor transport, "compute" for the
// executor's forward / backward callbacks, "framework" for the marks a
// framework sets through smp_timeline_begin / end; a tool can then split
// step time into runtime and the rest without knowing every name.
//
// Off (SMP_TIMELINE unset or empty): enabled() is one load of a bool and
// nothing is recorded. On: two clock reads and one append under a mutex
// per event.
#pragma once

#include <cstddef>
#include <string>

#include "comm/communicator.h"

namespace smp::pipeline::timeline {

namespace detail {
extern const bool g_enabled;  // SMP_TIMELINE non-empty, read once at load
}
inline bool enabled() { return detail::g_enabled; }
double now_us();  // the clock events use (CLOCK_MONOTONIC, microseconds)

struct Args {
  int microbatch = -1;
  int chunk = -1;
  int peer = -1;
  long long bytes = -1;
  const char *group = nullptr;
};

// A complete event [start_us, end_us] named `name` (a C API name without
// its smp_ prefix: "allreduce", "wait", "send_tensor", ...; the category is
// "compute" for "forward" / "backward", else "runtime"). Never throws (an
// event that cannot be stored for lack of memory is dropped), so a Scope
// may end in a noexcept function.
void record(const char *name, double start_us, double end_us, const Args &args) noexcept;

// Records the enclosing scope when the timeline is on.
class Scope {
 public:
  Scope(const char *name, const Args &args) : name_(name), args_(args) {
    if (enabled()) start_ = now_us();
  }
  ~Scope() {
    if (start_ >= 0) record(name_, start_, now_us(), args_);
  }
  Scope(const Scope &) = delete;
  Scope &operator=(const Scope &) = delete;
  void set_bytes(long long bytes) { args_.bytes = bytes; }

 private:
  const char *name_;
  Args args_;
  double start_ = -1;
};

// Framework marks (smp_timeline_begin / smp_timeline_end): a per-thread
// stack, so marks nest.
void begin(const std::string &name, const Args &args);
void end();  // throws InvalidArgument without a matching begin

// Collective over `world`: gathers every rank's events to rank 0, which
// writes SMP_TIMELINE's file (or `path` when given); clears the buffers.
// A no-op (still collective-free) when the timeline is off. Times are
// aligned on a barrier, so tracks of different hosts line up to within
// the barrier's skew.
void write_timeline(comm::Communicator &world, const std::string &path = "");

// For smp_finalize. Collective over `world` when the timeline is on (a
// no-op otherwise): one small allreduce agrees on whether every rank is
// `healthy` (has seen no communication failure), whether any rank has
// events pending and whether the file was ever written; writes it (as
// write_timeline) only when all are healthy, some events are pending and
// it was never written. The agreement makes every rank take the same
// branch, so no rank is left alone in the write's collectives. Returns
// whether it wrote.
bool write_at_finalize(comm::Communicator &world, bool healthy);

// Pure: one rank's events as JSON objects separated by ",\n" (tests).
std::string events_json(int rank, double offset_us);
size_t event_count();

}  // namespace smp::pipeline::timeline
