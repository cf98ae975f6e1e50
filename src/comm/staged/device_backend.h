// The backend for CUDA memory in one group: NCCL (with the staged backend
// under it for what NCCL does not serve) when built with NCCL, the staged
// backend alone otherwise. Unless SMP_CUDA_IPC=0 the IPC backend sits
// between them (=require: no silent fallback): a group whose ranks all
// share one GPU (which NCCL declines) runs its collectives through CUDA IPC
// segments (comm/ipc/ipc_backend.h). Built only with CUDA; Context calls it
// once per group and per communicator duplicate (blocking, non-blocking).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>

#include "comm/backend.h"

namespace smp::comm {

// group_comm: the group's MPI communicator (duplicated; the caller keeps
// it). max_chunk: elements per MPI call (as MpiBackend). timeout_seconds:
// SMP_TIMEOUT (<= 0: none). SMP_STAGED_CHUNK_BYTES fixes the staged
// pipeline's chunk size (default: automatic), SMP_STAGED_RS_DEVICE_MIN_BYTES
// its smallest reduce-scatter block reduced on the device (default 8 MiB),
// SMP_IPC_CHUNK_BYTES the IPC backend's half segment (default 8 MiB),
// SMP_IPC_MIN_BYTES its smallest call (default: measured); SMP_NCCL=0
// turns NCCL off.
// p2p_host: the group's host backend, which point-to-point on device
// memory goes through so that it matches host-memory peers (not owned; it
// outlives the returned backend).
std::unique_ptr<Backend> make_device_backend(MPI_Comm group_comm, size_t max_chunk,
                                             double timeout_seconds, int world_rank, Backend *p2p_host);

}  // namespace smp::comm
