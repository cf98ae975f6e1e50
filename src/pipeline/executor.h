// Runs one training step of a pipeline stage: walks the stage's schedule,
// calling the framework's forward and backward for each (microbatch, chunk)
// and moving activations and gradients with the tensor transport. The
// framework supplies the compute; the executor owns the order and the
// messages (and, with SMP_TIMELINE, records both). The one pipeline
// executor: C++ callers use run_step directly, every other framework
// through smp_pipeline_run_step (capi/pipeline_api.cc).
//
// Virtual stages live where schedule.h's virtual_stage puts them; the
// tensor between two virtual stages on the same rank (every one when
// pp == 1, zb-v's turn of the V) is handed over in memory.
//
// Tensors cross the boundary as DLPack managed tensors, so any framework's
// tensors pass zero-copy: what the executor hands to a callback is the
// callback's to keep (it may hold an input until its backward), and what a
// callback returns is the executor's, freed with its deleter once its send
// has completed (or handed on to the next chunk in memory when pp == 1).
//
// Failures. A callback that throws (or returns a tensor the transport
// cannot send) does not stop this stage's walk: the rest of the schedule
// runs without calling the framework, every tensor still due to a
// neighbour is replaced by a small failure marker, and a stage that
// receives a marker stops calling its framework too. At the end every
// stage agrees (one allreduce over the group) on the first stage that
// failed, so no stage is left waiting for a message and every stage
// throws: the failing stage its own error, the others PeerFailed with the
// failing stage's message. A transport error (timeout, backend) throws at
// once; SMP_TIMEOUT's watchdog covers the neighbours then.
#pragma once

#include <dlpack/dlpack.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "pipeline/schedule.h"
#include "pipeline/transport.h"

namespace smp::pipeline {

// A DLPack managed tensor with one owner; freed with its own deleter.
struct DLPackDeleter {
  void operator()(DLManagedTensor *t) const noexcept {
    if (t != nullptr && t->deleter != nullptr) t->deleter(t);
  }
};
using ManagedTensor = std::unique_ptr<DLManagedTensor, DLPackDeleter>;

// An OwnedTensor (the transport's host tensors) as a ManagedTensor.
inline ManagedTensor to_managed(OwnedTensor t) { return ManagedTensor(t.release_to_dlpack()); }

struct StageFns {
  // Forward of (microbatch, chunk). `input` is the previous virtual stage's
  // output, null on virtual stage 0 (the stage reads its own data).
  // Returns the output activation, sent to the next virtual stage; on the
  // last virtual stage (where the loss lives) it may be null and is not
  // sent anywhere.
  std::function<ManagedTensor(int microbatch, int chunk, ManagedTensor input)> forward;
  // Backward of (microbatch, chunk). `grad_output` is the gradient of the
  // forward's output from the next virtual stage, null on the last virtual
  // stage (start from the loss). Returns the gradient of the forward's
  // input, sent to the previous virtual stage; on virtual stage 0 it may
  // be null and is ignored.
  std::function<ManagedTensor(int microbatch, int chunk, ManagedTensor grad_output)> backward;
  // Split-backward schedules (zb-h1, zb-v). When set, `backward` is the
  // input-gradient half (B: keep what the weight gradient needs) and this
  // is the weight-gradient half (W) of (microbatch, chunk), called later
  // (after its B) to compute and accumulate the parameters' gradients.
  // When not set, B runs the whole `backward` and W does nothing. Ignored
  // by the other schedules.
  std::function<void(int microbatch, int chunk)> backward_weight;
};

// What every received activation and gradient must be, when the framework
// knows (a mismatch fails the step with PeerFailed, naming both).
struct TensorSpec {
  DLDataType dtype{};
  std::vector<int64_t> shape;
};

// Tags the executor uses on the pipeline communicator.
inline constexpr int kActivationTag = 0;
inline constexpr int kGradientTag = 1;

// `comm` is the pipeline group: its rank is this stage, its size pp.
// Received tensors are host tensors; sent ones may be anything the
// transport takes (CPU or CUDA memory, contiguous). Throws smp::Error:
// InvalidArgument, before any communication, for parameters that do not
// match the communicator; after a failed step as described at the top.
void run_step(comm::Communicator &comm, const ScheduleParams &params, const StageFns &fns,
              const TensorSpec *expect = nullptr);

}  // namespace smp::pipeline
