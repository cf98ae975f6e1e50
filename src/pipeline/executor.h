// Runs one training step of a pipeline stage: walks the stage's schedule,
// calling the framework's forward and backward for each (microbatch, chunk)
// and moving activations and gradients with the tensor transport. The
// framework supplies the compute; the executor owns the order and the
// messages (and, with SMP_TIMELINE, records both).
#pragma once

#include <functional>

#include "comm/communicator.h"
#include "pipeline/schedule.h"
#include "pipeline/transport.h"

namespace smp::pipeline {

struct StageFns {
  // Forward of (microbatch, chunk). `input` is the previous virtual stage's
  // output, or nullptr on virtual stage 0 (the stage reads its own data).
  // Returns the output activation: sent to the next virtual stage, or, on
  // the last virtual stage, passed back as `grad_output == nullptr` time
  // (the loss lives there; its output is not sent anywhere).
  std::function<OwnedTensor(int microbatch, int chunk, const DLTensor *input)> forward;
  // Backward of (microbatch, chunk). `grad_output` is the gradient of the
  // forward's output from the next virtual stage, or nullptr on the last
  // virtual stage (start from the loss). Returns the gradient of the
  // forward's input (ignored on virtual stage 0: return an empty tensor).
  std::function<OwnedTensor(int microbatch, int chunk, const DLTensor *grad_output)> backward;
};

// Tags the executor uses on the pipeline communicator.
inline constexpr int kActivationTag = 0;
inline constexpr int kGradientTag = 1;

// `comm` is the pipeline group: its rank is this stage, its size pp.
// Throws smp::Error (InvalidArgument for parameters that do not match the
// communicator, whatever the transport or the callbacks throw).
void run_step(comm::Communicator &comm, const ScheduleParams &params, const StageFns &fns);

}  // namespace smp::pipeline
