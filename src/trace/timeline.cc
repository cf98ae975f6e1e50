#include "trace/timeline.h"

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <utility>

#include "common/error.h"

namespace smp::trace {

namespace {

std::mutex g_mu;
std::vector<Event> g_events;

struct Mark {
  std::string name;
  double start;
  Args args;
};
thread_local std::vector<Mark> t_marks;

// The executor records its forward / backward callbacks through Scope:
// the model's compute, not the runtime's.
const char *category(const char *name) {
  return std::strcmp(name, "forward") == 0 || std::strcmp(name, "backward") == 0 ? "compute" : "runtime";
}

}  // namespace

const std::string &path() {
  static const std::string p = [] {
    const char *e = std::getenv("SMP_TIMELINE");
    return std::string(e ? e : "");
  }();
  return p;
}

namespace detail {
const bool g_enabled = !path().empty();
}

double now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) * 1e-3;
}

void record(const char *name, double start_us, double end_us, const Args &args) noexcept {
  if (!enabled()) return;
  try {
    std::lock_guard<std::mutex> lock(g_mu);
    g_events.push_back(Event{name, start_us, end_us, args, category(name)});
  } catch (...) {
    // Out of memory: the event is dropped; the call it describes went on.
  }
}

void begin(const std::string &name, const Args &args) {
  if (!enabled()) return;
  t_marks.push_back(Mark{name, now_us(), args});
}

void end() {
  if (!enabled()) return;
  if (t_marks.empty()) invalid("timeline_end without a matching timeline_begin on this thread");
  const Mark m = t_marks.back();
  t_marks.pop_back();
  std::lock_guard<std::mutex> lock(g_mu);
  g_events.push_back(Event{m.name, m.start, now_us(), m.args, "framework"});
}

size_t event_count() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_events.size();
}

std::vector<Event> take() {
  std::lock_guard<std::mutex> lock(g_mu);
  return std::exchange(g_events, {});
}

}  // namespace smp::trace
