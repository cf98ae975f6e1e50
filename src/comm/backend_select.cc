#include "comm/backend_select.h"

#include "comm/mpi/mpi_backend.h"
#include "comm/mpi/mpi_util.h"
#if SMP_HAVE_CUDA
#include <cstdlib>
#include <string>

#include "comm/device_env.h"
#include "comm/ipc/cuda_ipc_memory.h"
#include "comm/ipc/ipc_backend.h"
#include "comm/mpi/mpi_bootstrap.h"
#include "comm/staged/cuda_copy_engine.h"
#include "comm/staged/staged_backend.h"
#include "cuda/runtime.h"
#if SMP_HAVE_NCCL
#include "comm/nccl/nccl_backend.h"
#endif
#endif

namespace smp::comm {

namespace {

#if SMP_HAVE_CUDA
// The CUDA-memory chain of one group (one communicator duplicate).
std::unique_ptr<Backend> device_chain(MPI_Comm group_comm, size_t max_chunk, double timeout_seconds,
                                      int world_rank, Backend *p2p_host) {
  static const auto engine = std::make_shared<staged::CudaCopyEngine>();
  int rank = 0, size = 1;
  MPI_Comm_rank(group_comm, &rank);
  MPI_Comm_size(group_comm, &size);
  std::unique_ptr<Backend> chain = std::make_unique<staged::StagedBackend>(
      std::make_unique<mpi::MpiBackend>(group_comm, max_chunk), rank, size, engine,
      env_bytes("SMP_STAGED_CHUNK_BYTES", staged::kAutoChunk, 8), p2p_host,
      env_bytes("SMP_STAGED_RS_DEVICE_MIN_BYTES", staged::kDeviceReduceMinBytes, 0));
  // Ranks that share one GPU: collectives through CUDA IPC segments (all of
  // them under MPS, those of 2 MiB and more where the processes take turns
  // on the GPU: ipc_backend.h), the staged backend for the rest.
  if (const IpcMode mode = ipc_mode(); mode != IpcMode::Off) {
    chain = std::make_unique<ipc::IpcBackend>(
        std::make_unique<mpi::MpiBootstrap>(group_comm, "cuda ipc"), std::make_shared<ipc::CudaIpcMemory>(),
        std::move(chain), env_bytes("SMP_IPC_CHUNK_BYTES", ipc::kDefaultChunkBytes, 8 * ipc::kMaxInputs),
        world_rank, mode == IpcMode::Required, env_bytes("SMP_IPC_MIN_BYTES", ipc::kAutoMinBytes, 0));
  }
#if SMP_HAVE_NCCL
  const char *use = std::getenv("SMP_NCCL");
  if (!(use && std::string(use) == "0"))
    return std::make_unique<nccl::NcclBackend>(std::make_unique<mpi::MpiBootstrap>(group_comm, "nccl bootstrap"),
                                               std::move(chain), timeout_seconds, nccl::real_nccl_api(),
                                               world_rank);
#else
  (void)timeout_seconds;
#endif
  return chain;
}
#endif

}  // namespace

BackendSelect::BackendSelect(MPI_Comm world, size_t max_chunk, double timeout_seconds, int world_rank)
    : max_chunk_(max_chunk), timeout_(timeout_seconds), world_rank_(world_rank) {
#if SMP_HAVE_CUDA
  int gpu = cuda::device_count() > 0 ? 1 : 0;
  mpi::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &gpu, 1, MPI_INT, MPI_MAX, world), "smp_init: MPI_Allreduce");
  device_ = gpu != 0;
#else
  (void)world;
#endif
}

GroupBackends BackendSelect::select(MPI_Comm group_comm) const {
  GroupBackends b;
  b.host = std::make_unique<mpi::MpiBackend>(group_comm, max_chunk_);
  b.host_async = std::make_unique<mpi::MpiBackend>(group_comm, max_chunk_);
#if SMP_HAVE_CUDA
  if (device_) {
    b.device = device_chain(group_comm, max_chunk_, timeout_, world_rank_, b.host.get());
    b.device_async = device_chain(group_comm, max_chunk_, timeout_, world_rank_, b.host_async.get());
  }
#endif
  return b;
}

}  // namespace smp::comm
