// Microbatch schedules: for one pipeline stage, the ordered list of
// operations it performs in one training step. Pure (no MPI).
//
// Model layout: the model is cut into pp * chunks consecutive "virtual
// stages"; virtual stage c * pp + s (chunk c) lives on rank s, as in
// Megatron-LM's interleaved schedule. With chunks == 1 that is the plain
// pipeline, stage s holding the s-th slice of the model.
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
};
inline constexpr int kNumScheduleKinds = 3;

enum class OpKind : int {
  Forward = 0,
  Backward = 1,
  SendActivation = 2,  // to the next virtual stage
  RecvActivation = 3,  // from the previous virtual stage
  SendGradient = 4,    // to the previous virtual stage
  RecvGradient = 5,    // from the next virtual stage
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
const char *op_kind_name(OpKind k);        // "forward", "send_activation", ...
const char *schedule_kind_name(ScheduleKind k);  // "simple", "interleaved", "virtual"
// Parses "simple" / "gpipe", "interleaved" / "1f1b", "virtual"; throws
// InvalidArgument otherwise.
ScheduleKind parse_schedule_kind(const std::string &name);

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
//   microbatches x chunks <= kMaxStageSlots, pp x chunks <= kMaxVirtualStages.
void validate(const ScheduleParams &p);

// The in-flight cap interleaved uses on stage `stage`: min(microbatches,
// active, pp - stage). Plain 1F1B never holds more than pp - stage
// microbatches on stage `stage`, so caps >= pp (SageMaker's default pp + 2)
// give plain 1F1B; smaller caps trade bubble for activation memory.
int inflight_cap(const ScheduleParams &p, int stage);

// The compute order of one stage (Forward/Backward ops only).
std::vector<Op> compute_order(const ScheduleParams &p, int stage);

// The full op list of one stage: the compute order with the receive each
// compute op needs placed before it and the send it produces after it; the
// send after compute op k and the receive before compute op k+1 form one
// exchange (Megatron's send_forward_recv_backward pattern).
std::vector<Op> build_schedule(const ScheduleParams &p, int stage);

// Every stage's list, index = stage; InvalidArgument above kMaxAllSlots.
std::vector<std::vector<Op>> build_all(const ScheduleParams &p);

}  // namespace smp::pipeline
