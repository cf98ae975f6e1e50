// Where an optimizer's tensors live. The sharded step runs where the model
// does: on the host with host tensors, on one CUDA device (state in device
// memory, the CUDA kernels) with device tensors. A list that mixes the two,
// or spans devices, is an argument error: a step would otherwise have to
// move every gradient between memories, silently and slowly. Pure: the
// pointer classification is passed in (cuda::device_of in the optimizer, a
// table in the unit test).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "optim/shard_layout.h"

namespace smp::optim {

// One model tensor: its spec, where the model copy and its gradient live
// (spec.count elements of spec.dtype each), and whether this rank's copy
// counts toward the global norm. Set in_norm = false on every rank but one
// of a set holding the same replicated tensor outside the sharding group
// (e.g. a tensor replicated across TP while the optimizer shards over RDP:
// in_norm = (tp_rank == 0)); its inf/NaN check still applies everywhere.
struct TensorBinding {
  TensorSpec spec;
  void *param = nullptr;
  const void *grad = nullptr;
  bool in_norm = true;
};

enum class Memory : int { Host = 0, Cuda = 1 };

struct Placement {
  Memory memory = Memory::Host;
  int device = -1;  // the CUDA device (Memory::Cuda), else -1
};

// device_of(p): the CUDA device holding p, or -1 for host memory.
using DeviceOf = std::function<int(const void *)>;

// The one placement of every param and grad pointer of the non-empty
// tensors (empty tensors own no memory and are ignored; no tensor at all
// is Host). Throws smp::Error(InvalidArgument) naming the first pointer
// whose memory differs from the first one's.
Placement place_tensors(const std::vector<TensorBinding> &tensors, const DeviceOf &device_of);

}  // namespace smp::optim
