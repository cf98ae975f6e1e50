// Timeline recording (SMP_TIMELINE=path, set by smprun --timeline): every
// rank records the pipeline operations it runs (forward / backward of the
// executor or marked by the framework through the C API, tensor sends,
// receives and exchanges) as Chrome-trace complete events, and
// write_timeline() gathers every rank's events into one Chrome-trace JSON
// file (loads in Perfetto and chrome://tracing), one track (pid) per rank.
//
// Off (SMP_TIMELINE unset or empty): enabled() is one load of a bool and
// nothing is recorded. On: two clock reads and one append under a mutex
// per event.
#pragma once

#include <cstddef>
#include <string>

#include "comm/communicator.h"

namespace smp::pipeline::timeline {

bool enabled();
double now_us();  // the clock events use (CLOCK_MONOTONIC, microseconds)

struct Args {
  int microbatch = -1;
  int chunk = -1;
  int peer = -1;
  long long bytes = -1;
  const char *group = nullptr;
};

// A complete event [start_us, end_us] named `name` (a C API name without
// its smp_ prefix: "forward", "send_tensor", "exchange_tensors", ...).
void record(const char *name, double start_us, double end_us, const Args &args);

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

// Pure: one rank's events as JSON objects separated by ",\n" (tests).
std::string events_json(int rank, double offset_us);
size_t event_count();

}  // namespace smp::pipeline::timeline
