// smp-schedule: prints a pipeline schedule, every stage's ops with their
// simulated start and end times, as JSON (scripts/draw_schedule.py draws
// it). Usage errors exit 2 with one line on stderr.
//
//   smp-schedule --kind interleaved --pp 4 --microbatches 8
//                [--chunks C] [--active A] [--forward F] [--backward B]
//                [--backward-input T] [--backward-weight T] [--transfer T]
//
// zb-h1 and zb-v split each backward into B (input gradient) and W
// (weight gradient): --backward-input and --backward-weight time them,
// each defaulting to half of --backward; for the other schedules a
// backward takes B + W when both are given. zb-v's chunks default to 2.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "common/error.h"
#include "pipeline/simulate.h"

using namespace smp::pipeline;

int main(int argc, char **argv) {
  CLI::App app{"Print a pipeline schedule with simulated times as JSON"};
  std::string kind = "interleaved";
  ScheduleParams p;
  double fwd = 1.0, bwd = 2.0, transfer = 0.0, bin = -1.0, bw = -1.0;
  app.add_option("--kind", kind, "simple | interleaved | virtual | zb-h1 | zb-v");
  app.add_option("--pp", p.pp, "pipeline stages")->required();
  app.add_option("--microbatches,-m", p.microbatches, "microbatches per step")->required();
  auto *chunks = app.add_option("--chunks", p.chunks, "model chunks per rank (simple, virtual; zb-v: 2)");
  app.add_option("--active", p.active, "interleaved: in-flight cap (0 = pp + 2)");
  app.add_option("--forward", fwd, "time of one forward of one chunk");
  app.add_option("--backward", bwd, "time of one backward of one chunk");
  app.add_option("--backward-input", bin, "time of one backward-input (B) of one chunk")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--backward-weight", bw, "time of one backward-weight (W) of one chunk")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--transfer", transfer, "time of one activation or gradient transfer");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError &e) {
    std::fprintf(stderr, "smp-schedule: %s\n", e.what());
    return 2;
  }
  Simulation sim;
  std::vector<std::vector<Op>> stages;
  try {
    p.kind = parse_schedule_kind(kind);
    if (p.kind == ScheduleKind::ZbV && chunks->count() == 0) p.chunks = 2;
    // B and W: given, else half the backward; a backward, when both are
    // given, is their sum (so one pair of flags times every schedule alike).
    if (bin >= 0 && bw >= 0) bwd = bin + bw;
    if (bin < 0) bin = bwd / 2;
    if (bw < 0) bw = bwd / 2;
    stages = build_all(p);
    Costs costs{std::vector<double>(p.pp, fwd), std::vector<double>(p.pp, bwd), transfer, transfer,
                std::vector<double>(p.pp, bin), std::vector<double>(p.pp, bw)};
    sim = simulate(stages, costs, &p);
  } catch (const smp::Error &e) {
    std::fprintf(stderr, "smp-schedule: %s\n", e.what());
    return e.status() == smp::Status::InvalidArgument ? 2 : 1;
  }
  std::printf("{\"kind\": \"%s\", \"pp\": %d, \"microbatches\": %d, \"chunks\": %d, \"active\": %d,\n",
              schedule_kind_name(p.kind), p.pp, p.microbatches, p.chunks, p.active);
  std::printf(" \"forward\": %g, \"backward\": %g, \"backward_input\": %g, \"backward_weight\": %g, "
              "\"transfer\": %g,\n",
              fwd, bwd, bin, bw, transfer);
  std::printf(" \"step_time\": %.17g, \"bubble_fraction\": %.17g,\n", sim.step_time, sim.bubble_fraction);
  std::printf(" \"peak_activations\": [");
  for (int s = 0; s < p.pp; ++s) std::printf("%s%d", s ? ", " : "", sim.peak_activations[s]);
  std::printf("],\n \"stages\": [\n");
  for (int s = 0; s < p.pp; ++s) {
    std::printf("  [");
    for (size_t i = 0; i < stages[s].size(); ++i) {
      const Op &o = stages[s][i];
      std::printf("%s{\"op\": \"%s\", \"mb\": %d, \"chunk\": %d, \"peer\": %d, \"batch\": %d, "
                  "\"start\": %.17g, \"end\": %.17g}",
                  i ? ",\n   " : "", op_kind_name(o.kind), o.microbatch, o.chunk, o.peer, o.batch,
                  sim.times[s][i].start, sim.times[s][i].end);
    }
    std::printf("]%s\n", s + 1 < p.pp ? "," : "");
  }
  std::printf(" ]}\n");
  return 0;
}
