// Executes every stage's op list together on a simulated clock: the step
// time, the bubble and the activation memory a schedule implies for given
// costs. The same engine answers "does this schedule deadlock?". Pure.
//
// Semantics (those of the transport, pipeline/transport.h): a stage issues
// an exchange's sends and receives together when it reaches the exchange;
// the sends never block it (they complete in the background and are waited
// for at the end of the step), the receives do: it leaves the exchange once
// every receive has its data. The k-th receive on a channel (source,
// destination, activation or gradient) gets the k-th send, as MPI's
// non-overtaking rule guarantees for one source, tag and communicator; its
// transfer starts when both are issued and takes the transfer time.
// Compute ops run back to back.
#pragma once

#include <string>
#include <vector>

#include "pipeline/schedule.h"

namespace smp::pipeline {

struct Costs {
  std::vector<double> forward;   // per stage: one forward of one chunk of one microbatch
  std::vector<double> backward;  // per stage: one backward of the same (B + W)
  double activation_transfer = 0;  // one activation between neighbouring stages
  double gradient_transfer = 0;    // one gradient between neighbouring stages
  // Split-backward schedules: per stage, one BackwardInput (B) and one
  // BackwardWeight (W). Empty: each is half of `backward`.
  std::vector<double> backward_input;
  std::vector<double> backward_weight;
};

struct OpTime {
  double start = 0;
  double end = 0;
};

struct Simulation {
  double step_time = 0;        // the last stage to finish
  double bubble_fraction = 0;  // 1 - sum(busy) / (pp * step_time)
  std::vector<double> busy;    // per stage: total compute time
  // per stage: most microbatch-chunks held at once (from a forward to its
  // backward, or to its B with a split backward)
  std::vector<int> peak_activations;
  std::vector<std::vector<OpTime>> times;  // per stage, per op
};

// Throws Error(InvalidArgument) when costs are negative or sized wrongly, or
// when sends and receives do not pair up (counts or microbatch/chunk differ
// on a channel); throws Error(Internal) naming every stuck stage and the op
// it waits at when the schedules deadlock.
// `layout` says where the virtual stages live (its kind, pp and chunks;
// virtual_stage in schedule.h); without it, Megatron's layout (chunk c of
// stage s is virtual stage c * pp + s), which every schedule but zb-v has.
Simulation simulate(const std::vector<std::vector<Op>> &stages, const Costs &costs,
                    const ScheduleParams *layout = nullptr);

// Most stored activations of one stage's list: +1 at each forward, -1 at
// the end of the backward (or B) that frees it.
int peak_activations(const std::vector<Op> &ops);

// Proves a schedule correct: every stage runs exactly one forward and one
// backward of every (microbatch, chunk) (split schedules: one B and one W,
// F before B before W; the others: no B or W), sends and receives pair
// up, the stages' lists run to completion together (no deadlock), no
// stage holds more activations than activation_bound allows, and, on the
// simulated clock, every forward starts after the forward of the previous
// virtual stage ended and every backward (B) after the next virtual
// stage's backward (and its own forward), every W after its B. Returns ""
// or what is wrong.
std::string check_schedule(const ScheduleParams &p);
// The same proof for given lists (a schedule edited by hand, a mutation).
std::string check_stages(const ScheduleParams &p, const std::vector<std::vector<Op>> &stages);

}  // namespace smp::pipeline
