// Microbatch schedules: for one pipeline stage, the ordered list of
// operations it performs in one training step. Pure (no MPI).
//
// Model layout: the model is cut into pp * chunks consecutive "virtual
// stages"; virtual stage c * pp + s (chunk c) lives on rank s, as in
// Megatron-LM's interleaved schedule. With chunks == 1 that is the plain
// pipeline, stage s holding the s-th slice of the model. zb-v lays its two
// chunks out in a V instead (virtual_stage below): chunk 0 of rank s is
// virtual stage s, chunk 1 is 2 * pp - 1 - s, so the last rank hands chunk
// 0's output to its own chunk 1 and the loss lives on rank 0.
//
// Split backward (zb-h1, zb-v; Qi et al., "Zero Bubble Pipeline
// Parallelism", 2023): each backward is two ops, BackwardInput (B: the
// gradient of the chunk's input, which the previous virtual stage waits
// for) and BackwardWeight (W: the parameters' gradients, which nobody
// waits for), so W can fill what would be bubble. A microbatch's
// activations count as freed at its B; W holds only what the weight
// gradient needs.
//
// Communication: every send/recv carries an exchange index (`batch`).
// Consecutive communication ops with the same batch are issued together
// (non-blocking); the stage then waits for the exchange's receives before it
// goes on, while its sends complete in the background (waited for at the end
// of the step). A stage therefore never waits on its own sends, which is
// what keeps schedules whose neighbours run far apart (GPipe over several
// chunks, Megatron's interleaving) free of send/send cycles; simulate.h
// proves every schedule deadlock-free under these rules. Compute ops have
// batch == -1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smp::pipeline {

enum class ScheduleKind : int {
  Simple = 0,       // GPipe: every forward, then every backward
  Interleaved = 1,  // 1F1B (SageMaker's default): a backward as soon as one is ready
  Virtual = 2,      // Megatron-LM interleaved 1F1B over several chunks per rank
  ZbH1 = 3,         // zero bubble H1: 1F1B's memory, split backward, bubble (p-1)/(3m+p-1)
  ZbV = 4,          // zero bubble V: two chunks per rank in a V, split backward
};
inline constexpr int kNumScheduleKinds = 5;

enum class OpKind : int {
  Forward = 0,
  Backward = 1,
  SendActivation = 2,  // to the next virtual stage
  RecvActivation = 3,  // from the previous virtual stage
  SendGradient = 4,    // to the previous virtual stage
  RecvGradient = 5,    // from the next virtual stage
  BackwardInput = 6,   // B: the input gradient only (split-backward schedules)
  BackwardWeight = 7,  // W: the parameters' gradients of a microbatch whose B ran
};

struct Op {
  OpKind kind;
  int microbatch;
  int chunk;
  int peer;   // stage (rank in the pipeline group) on the other side; -1 for compute
  int batch;  // exchange index of a communication op; -1 for compute
  bool operator==(const Op &o) const {
    return kind == o.kind && microbatch == o.microbatch && chunk == o.chunk && peer == o.peer &&
           batch == o.batch;
  }
};

bool is_compute(OpKind k);
bool is_send(OpKind k);
// Backward or BackwardInput: the op that needs the next virtual stage's
// gradient, sends its own back and frees the microbatch's activations.
bool is_backward(OpKind k);
const char *op_kind_name(OpKind k);        // "forward", "backward_input", "send_activation", ...
// "simple", "interleaved", "virtual", "zb-h1", "zb-v"
const char *schedule_kind_name(ScheduleKind k);
// Parses "simple" / "gpipe", "interleaved" / "1f1b", "virtual", "zb-h1",
// "zb-v"; throws InvalidArgument otherwise.
ScheduleKind parse_schedule_kind(const std::string &name);
// Whether the schedule's backwards are BackwardInput + BackwardWeight.
bool splits_backward(ScheduleKind k);

struct ScheduleParams {
  ScheduleKind kind = ScheduleKind::Interleaved;
  int pp = 1;            // pipeline stages (ranks)
  int microbatches = 1;
  int chunks = 1;        // model chunks per rank (virtual stages per rank)
  int active = 0;        // interleaved only: in-flight cap; 0 = SageMaker's pp + 2
};

// Bounds on the products of the parameters (about 6 ops, ~24 bytes each,
// per microbatch-chunk slot): one stage's list, the virtual stage count,
// and every stage's lists together (build_all, simulate).
inline constexpr int64_t kMaxStageSlots = int64_t{1} << 20;
inline constexpr int64_t kMaxVirtualStages = int64_t{1} << 20;
inline constexpr int64_t kMaxAllSlots = int64_t{1} << 22;

// Throws InvalidArgument, naming the offending value, when the parameters
// do not describe a schedule this module can build:
//   pp >= 1, microbatches >= 1, chunks >= 1, active >= 0;
//   simple: any chunks; interleaved: chunks == 1;
//   virtual: microbatches a multiple of pp when chunks > 1 (Megatron's rule);
//   active is only meaningful for interleaved (must be 0 otherwise);
//   zb-h1: chunks == 1; zb-v: chunks == 2; both pp >= 2, microbatches >= pp;
//   microbatches x chunks <= kMaxStageSlots, pp x chunks <= kMaxVirtualStages.
void validate(const ScheduleParams &p);

// The in-flight cap interleaved uses on stage `stage`: min(microbatches,
// active, pp - stage). Plain 1F1B never holds more than pp - stage
// microbatches on stage `stage`, so caps >= pp (SageMaker's default pp + 2)
// give plain 1F1B; smaller caps trade bubble for activation memory.
int inflight_cap(const ScheduleParams &p, int stage);

// The most activations (microbatch-chunks between their forward and their
// backward / backward-input) the schedule lets stage `stage` hold: 1F1B's
// bound, pp - stage, for interleaved (capped as inflight_cap) and zb-h1;
// 2 * pp chunks for zb-v (1F1B's first stage, pp microbatches of two
// chunks each, on every stage); -1 where the schedule sets no bound
// (simple, virtual).
int activation_bound(const ScheduleParams &p, int stage);

// Where the model's pieces are: virtual stage of (stage, chunk), and back.
int virtual_stage(const ScheduleParams &p, int stage, int chunk);
struct StageChunk {
  int stage;
  int chunk;
};
StageChunk stage_chunk(const ScheduleParams &p, int vstage);

// The compute order of one stage (Forward/Backward ops only; Forward,
// BackwardInput and BackwardWeight for zb-h1 and zb-v). The zero-bubble
// orders come from a list scheduler run once over every stage with unit
// costs (F = B = W = 1, free transfers): a stage that is free takes a
// ready forward its activation bound allows (oldest microbatch, then the
// later virtual stage), else a ready B (the same order), else its oldest
// pending W, else waits. W thus fills the time 1F1B leaves idle, and the
// order is a fixed list that the simulator checks for any costs. On that
// clock zb-h1's bubble is (p-1)/(3m+p-1) and zb-v's (p-1)/(6m+p-1) for
// every pp <= 8, microbatches in pp..4pp (simulate_test).
std::vector<Op> compute_order(const ScheduleParams &p, int stage);

// The full op list of one stage: the compute order with the receive each
// compute op needs placed before it and the send it produces after it; the
// send after compute op k and the receive before compute op k+1 form one
// exchange (Megatron's send_forward_recv_backward pattern).
std::vector<Op> build_schedule(const ScheduleParams &p, int stage);

// Every stage's list, index = stage; InvalidArgument above kMaxAllSlots.
// (The zero-bubble schedules are generated for all stages at once: ask
// for them all here rather than stage by stage.)
std::vector<std::vector<Op>> build_all(const ScheduleParams &p);

}  // namespace smp::pipeline
