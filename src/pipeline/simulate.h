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
  std::vector<double> backward;  // per stage: one backward of the same
  double activation_transfer = 0;  // one activation between neighbouring stages
  double gradient_transfer = 0;    // one gradient between neighbouring stages
};

struct OpTime {
  double start = 0;
  double end = 0;
};

struct Simulation {
  double step_time = 0;        // the last stage to finish
  double bubble_fraction = 0;  // 1 - sum(busy) / (pp * step_time)
  std::vector<double> busy;    // per stage: total compute time
  std::vector<int> peak_activations;  // per stage: most microbatch-chunks held at once
  std::vector<std::vector<OpTime>> times;  // per stage, per op
};

// Throws Error(InvalidArgument) when costs are negative or sized wrongly, or
// when sends and receives do not pair up (counts or microbatch/chunk differ
// on a channel); throws Error(Internal) naming every stuck stage and the op
// it waits at when the schedules deadlock.
Simulation simulate(const std::vector<std::vector<Op>> &stages, const Costs &costs);

// Most stored activations of one stage's list: +1 at each forward, -1 at
// the end of the backward that frees it.
int peak_activations(const std::vector<Op> &ops);

// Proves a schedule correct: every stage runs exactly one forward and one
// backward of every (microbatch, chunk), sends and receives pair up, the
// stages' lists run to completion together (no deadlock), and, on the
// simulated clock, every forward starts after the forward of the previous
// virtual stage ended and every backward after the next virtual stage's
// backward (and its own forward). Returns "" or what is wrong.
std::string check_schedule(const ScheduleParams &p);

}  // namespace smp::pipeline
