#include "pipeline/timeline_file.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>

#include <nlohmann/json.hpp>

#include "comm/comm_bootstrap.h"
#include "common/error.h"

namespace smp::pipeline::timeline {

namespace {

// ordered_json: keys stay in the order Chrome's documentation lists them.
using Json = nlohmann::ordered_json;

// write_timeline calls completed (the same on every rank).
std::mutex g_mu;
int g_writes = 0;

// Microseconds to the nanosecond: the clock's resolution, and short numbers.
double us(double v) { return std::round(v * 1e3) / 1e3; }

// Framework marks carry the caller's bytes: invalid UTF-8 is replaced, not thrown on.
std::string dump(const Json &j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void write_file(const std::string &path, const std::string &text) {
  const std::string tmp = path + ".tmp";
  FILE *f = std::fopen(tmp.c_str(), "w");
  if (!f) fail(Status::IO, "timeline: cannot write " + tmp);
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0;
  if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    fail(Status::IO, "timeline: cannot write " + path);
}

}  // namespace

std::string events_json(const std::vector<trace::Event> &events, int rank, double offset_us) {
  Json all = Json::array();
  for (const trace::Event &e : events) {
    Json args = Json::object();
    auto arg = [&](const char *k, long long v) {
      if (v >= 0) args[k] = v;
    };
    arg("microbatch", e.args.microbatch);
    arg("chunk", e.args.chunk);
    arg("peer", e.args.peer);
    arg("bytes", e.args.bytes);
    if (e.args.group) args["group"] = e.args.group;
    all.push_back(Json{{"name", e.name}, {"cat", e.cat}, {"ph", "X"}, {"pid", rank}, {"tid", 0},
                       {"ts", us(e.start - offset_us)}, {"dur", us(e.end - e.start)}, {"args", std::move(args)}});
  }
  return dump(all);
}

void write_timeline(comm::Communicator &world, const std::string &path) {
  if (!trace::enabled()) return;
  const std::string out_path = path.empty() ? trace::path() : path;
  // A common origin: the barrier's exit, shifted to the earliest event.
  world.barrier();
  const double t_barrier = trace::now_us();
  const std::vector<trace::Event> events = trace::take();
  double local_min = std::numeric_limits<double>::max(), global_min = 0;
  for (const trace::Event &e : events) local_min = std::min(local_min, e.start - t_barrier);
  world.allreduce(&local_min, &global_min, 1, DType::F64, comm::ReduceOp::Min);
  if (global_min == std::numeric_limits<double>::max()) global_min = 0;
  const std::string mine = events_json(events, world.rank(), t_barrier + global_min);

  // Every rank's events, through the control plane (any length per rank).
  comm::CommBootstrap control(world);
  const std::vector<std::string> all = control.allgatherv(mine);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    ++g_writes;
  }
  if (world.rank() != 0) return;

  Json trace_events = Json::array();
  for (int r = 0; r < world.size(); ++r)
    trace_events.push_back(Json{{"name", "process_name"}, {"ph", "M"}, {"pid", r}, {"args", {{"name", "rank " + std::to_string(r)}}}});
  bool any = false;
  for (const std::string &rank_events : all)
    for (Json &e : Json::parse(rank_events)) {
      trace_events.push_back(std::move(e));
      any = true;
    }
  if (!any) trace_events.push_back(Json{{"name", "empty"}, {"ph", "M"}, {"pid", 0}, {"args", Json::object()}});
  write_file(out_path, dump(Json{{"displayTimeUnit", "ms"}, {"traceEvents", std::move(trace_events)}}) + "\n");
}

bool write_at_finalize(comm::Communicator &world, bool healthy) {
  if (!trace::enabled()) return false;
  int64_t mine[3], all[3];
  mine[0] = healthy ? 0 : 1;
  mine[1] = trace::event_count() == 0 ? 0 : 1;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    mine[2] = g_writes > 0 ? 1 : 0;
  }
  world.allreduce(mine, all, 3, DType::I64, comm::ReduceOp::Max);
  if (all[0] != 0 || all[1] == 0 || all[2] != 0) return false;
  write_timeline(world);
  return true;
}

}  // namespace smp::pipeline::timeline
