// The composition root of comm: which engine serves a group's buffers of
// each memory type, chosen once when the group is set up (Context::init,
// Context::create_group), each backend handed what it needs: a Bootstrap
// over the group for its setup, and the backend below it to fall back on.
//
// Host memory: mpi/. CUDA memory (built with CUDA, where any rank has a
// GPU): NCCL (nccl/) when built with NCCL and SMP_NCCL is not 0, over the
// IPC backend (ipc/: ranks sharing one GPU, which NCCL declines; off with
// SMP_CUDA_IPC=0, no silent fallback with =require), over the staged
// backend (staged/: copies through host memory, MPI underneath), which
// serves whatever the layers above do not.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>

#include "comm/backend.h"

namespace smp::comm {

// One group's engines, each on its own duplicate of the group's
// communicator: *_async serve the non-blocking collectives (Communicator's
// worker thread), the others blocking collectives and point-to-point.
struct GroupBackends {
  std::unique_ptr<Backend> host, host_async;
  // CUDA memory; null without CUDA or without a GPU on any rank. Each
  // device backend's point-to-point goes through its host twin (which must
  // outlive it), so that a CUDA sender matches a host receiver.
  std::unique_ptr<Backend> device, device_async;
};

class BackendSelect {
 public:
  // Collective over world: device backends are made on every rank or on
  // none (making them duplicates each group's communicator), so the ranks
  // agree whether any has a GPU. max_chunk: elements per MPI call;
  // timeout_seconds: SMP_TIMEOUT (<= 0: none).
  BackendSelect(MPI_Comm world, size_t max_chunk, double timeout_seconds, int world_rank);

  // Collective over group_comm (duplicated; the caller keeps it). Reads
  // SMP_NCCL, SMP_CUDA_IPC, SMP_STAGED_CHUNK_BYTES (the staged pipeline's
  // chunk; default automatic), SMP_STAGED_RS_DEVICE_MIN_BYTES (its smallest
  // reduce-scatter block reduced on the device; default 8 MiB),
  // SMP_IPC_CHUNK_BYTES (the IPC backend's half segment; default 8 MiB) and
  // SMP_IPC_MIN_BYTES (its smallest call; default measured): a bad value
  // throws smp::Error(InvalidArgument) naming it (device_env.h).
  GroupBackends select(MPI_Comm group_comm) const;

  bool device() const { return device_; }

 private:
  size_t max_chunk_;
  double timeout_;
  int world_rank_;
  bool device_ = false;
};

}  // namespace smp::comm
