// Timeline recording (SMP_TIMELINE=path, set by smprun --timeline): every
// rank records the operations it runs as Chrome-trace complete events. This
// is the recorder alone, below comm so that every layer may record into it;
// gathering every rank's events into one file needs a communicator and
// lives above comm (pipeline/timeline_file.h).
//
// Recorded: the pipeline operations (forward / backward of the executor or
// marked by the framework through the C API, tensor sends, receives and
// exchanges) and every runtime call of the C API (capi/guard.h:
// collectives, sends and receives, posts and waits, the sharded
// optimizer's step, checkpoint save / load). Each event carries a category
// ("cat" in the file): "runtime" for those and the tensor transport,
// "compute" for the executor's forward / backward callbacks, "framework"
// for the marks a framework sets through smp_timeline_begin / end; a tool
// can then split step time into runtime and the rest without knowing every
// name.
//
// Off (SMP_TIMELINE unset or empty): enabled() is one load of a bool and
// nothing is recorded. On: two clock reads and one append under a mutex
// per event.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace smp::trace {

namespace detail {
extern const bool g_enabled;  // SMP_TIMELINE non-empty, read once at load
}
inline bool enabled() { return detail::g_enabled; }
const std::string &path();  // SMP_TIMELINE ("" when off)
double now_us();            // the clock events use (CLOCK_MONOTONIC, microseconds)

struct Args {
  int microbatch = -1;
  int chunk = -1;
  int peer = -1;
  long long bytes = -1;
  const char *group = nullptr;  // a static string (a group's name)
};

struct Event {
  std::string name;
  double start, end;  // now_us() clock
  Args args;
  const char *cat;  // "runtime", "compute" or "framework"
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

size_t event_count();
// This process's events so far, in recording order, and clears them (the
// file writer hands each event on once).
std::vector<Event> take();

}  // namespace smp::trace
