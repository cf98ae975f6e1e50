// The backend for CUDA memory in one group: NCCL (with the staged backend
// under it for what NCCL does not serve) when built with NCCL, the staged
// backend alone otherwise. With SMP_CUDA_IPC=1 (or =require: no silent
// fallback) the IPC backend sits between them: a group whose ranks all share one GPU (which NCCL declines) runs its
// collectives through CUDA IPC segments (comm/ipc/ipc_backend.h). Built only with CUDA; Context calls it once per
// group and per communicator duplicate (blocking, non-blocking).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <memory>

#include "comm/backend.h"

namespace smp::comm {

// group_comm: the group's MPI communicator (duplicated; the caller keeps
// it). max_chunk: elements per MPI call (as MpiBackend). timeout_seconds:
// SMP_TIMEOUT (<= 0: none). SMP_STAGED_CHUNK_BYTES sets the staged
// pipeline's chunk size (default 2 MiB), SMP_IPC_CHUNK_BYTES the IPC
// backend's (half a segment, default 8 MiB); SMP_NCCL=0 turns NCCL off.
// p2p_host: the group's host backend, which point-to-point on device
// memory goes through so that it matches host-memory peers (not owned; it
// outlives the returned backend).
std::unique_ptr<Backend> make_device_backend(MPI_Comm group_comm, size_t max_chunk,
                                             double timeout_seconds, int world_rank, Backend *p2p_host);

}  // namespace smp::comm
