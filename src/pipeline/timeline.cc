#include "pipeline/timeline.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <mutex>
#include <sstream>
#include <vector>

#include "common/error.h"

namespace smp::pipeline::timeline {

namespace {

struct Event {
  std::string name;
  double start, end;
  Args args;
  const char *cat;  // "runtime", "compute" or "framework"
};

std::mutex g_mu;
std::vector<Event> g_events;
int g_writes = 0;  // write_timeline calls completed (the same on every rank)

const std::string &path_from_env() {
  static const std::string path = [] {
    const char *p = std::getenv("SMP_TIMELINE");
    return std::string(p ? p : "");
  }();
  return path;
}

struct Mark {
  std::string name;
  double start;
  Args args;
};
thread_local std::vector<Mark> t_marks;

std::string escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;  // control characters: dropped
    out += c;
  }
  return out;
}

// The executor records its forward / backward callbacks through Scope:
// the model's compute, not the runtime's.
const char *category(const char *name) {
  return std::strcmp(name, "forward") == 0 || std::strcmp(name, "backward") == 0 ? "compute" : "runtime";
}

}  // namespace

namespace detail {
const bool g_enabled = !path_from_env().empty();
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

std::string events_json(int rank, double offset_us) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::ostringstream s;
  s.precision(3);
  s << std::fixed;
  bool first = true;
  for (const Event &e : g_events) {
    s << (first ? "" : ",\n") << "{\"name\": \"" << escape(e.name) << "\", \"cat\": \"" << e.cat
      << "\", \"ph\": \"X\", \"pid\": " << rank
      << ", \"tid\": 0, \"ts\": " << (e.start - offset_us) << ", \"dur\": " << (e.end - e.start)
      << ", \"args\": {";
    bool a = false;
    auto arg = [&](const char *k, long long v) {
      if (v < 0) return;
      s << (a ? ", " : "") << "\"" << k << "\": " << v;
      a = true;
    };
    arg("microbatch", e.args.microbatch);
    arg("chunk", e.args.chunk);
    arg("peer", e.args.peer);
    arg("bytes", e.args.bytes);
    if (e.args.group) s << (a ? ", " : "") << "\"group\": \"" << e.args.group << "\"";
    s << "}}";
    first = false;
  }
  return s.str();
}

void write_timeline(comm::Communicator &world, const std::string &path) {
  if (!enabled()) return;
  const std::string out_path = path.empty() ? path_from_env() : path;
  // A common origin: the barrier's exit, shifted to the earliest event.
  world.barrier();
  const double t_barrier = now_us();
  double local_min = std::numeric_limits<double>::max(), global_min = 0;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (const Event &e : g_events) local_min = std::min(local_min, e.start - t_barrier);
  }
  world.allreduce(&local_min, &global_min, 1, DType::F64, comm::ReduceOp::Min);
  if (global_min == std::numeric_limits<double>::max()) global_min = 0;
  const std::string mine = events_json(world.rank(), t_barrier + global_min);

  const int size = world.size(), root = 0;
  int64_t len = static_cast<int64_t>(mine.size());
  std::vector<int64_t> lens(static_cast<size_t>(size));
  std::vector<size_t> ones(static_cast<size_t>(size), 1);
  world.gatherv(&len, 1, lens.data(), ones.data(), DType::I64, root);
  std::vector<size_t> counts(static_cast<size_t>(size));
  size_t total = 0;
  for (int r = 0; r < size; ++r) total += counts[static_cast<size_t>(r)] = static_cast<size_t>(lens[static_cast<size_t>(r)]);
  std::vector<char> all(world.rank() == root ? std::max<size_t>(total, 1) : 1);
  world.gatherv(mine.data(), mine.size(), all.data(), counts.data(), DType::U8, root);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_events.clear();
    ++g_writes;
  }
  if (world.rank() != root) return;

  const std::string tmp = out_path + ".tmp";
  FILE *f = std::fopen(tmp.c_str(), "w");
  if (!f) fail(Status::IO, "timeline: cannot write " + tmp);
  std::fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
  for (int r = 0; r < size; ++r)
    std::fprintf(f, "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"args\": {\"name\": \"rank %d\"}},\n", r, r);
  size_t off = 0;
  bool first = true;
  for (int r = 0; r < size; ++r) {
    const size_t n = counts[static_cast<size_t>(r)];
    if (n == 0) continue;
    if (!first) std::fputs(",\n", f);
    std::fwrite(all.data() + off, 1, n, f);
    off += n;
    first = false;
  }
  if (first) std::fputs("{\"name\": \"empty\", \"ph\": \"M\", \"pid\": 0, \"args\": {}}", f);
  std::fprintf(f, "\n]}\n");
  const bool ok = std::fflush(f) == 0;
  if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), out_path.c_str()) != 0)
    fail(Status::IO, "timeline: cannot write " + out_path);
}

bool write_at_finalize(comm::Communicator &world, bool healthy) {
  if (!enabled()) return false;
  int64_t mine[3], all[3];
  {
    std::lock_guard<std::mutex> lock(g_mu);
    mine[0] = healthy ? 0 : 1;
    mine[1] = g_events.empty() ? 0 : 1;
    mine[2] = g_writes > 0 ? 1 : 0;
  }
  world.allreduce(mine, all, 3, DType::I64, comm::ReduceOp::Max);
  if (all[0] != 0 || all[1] == 0 || all[2] != 0) return false;
  write_timeline(world);
  return true;
}

}  // namespace smp::pipeline::timeline
