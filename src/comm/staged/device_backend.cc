#include "comm/staged/device_backend.h"

#include <cstdlib>
#include <string>

#include "comm/ipc/cuda_ipc_memory.h"
#include "comm/ipc/ipc_backend.h"
#include "comm/mpi/mpi_backend.h"
#include "comm/mpi/mpi_bootstrap.h"
#include "comm/staged/cuda_copy_engine.h"
#include "comm/staged/device_env.h"
#include "comm/staged/staged_backend.h"
#if SMP_HAVE_NCCL
#include "comm/nccl/nccl_backend.h"
#endif

namespace smp::comm {

std::unique_ptr<Backend> make_device_backend(MPI_Comm group_comm, size_t max_chunk,
                                             double timeout_seconds, int world_rank, Backend *p2p_host) {
  static const auto engine = std::make_shared<staged::CudaCopyEngine>();
  int rank = 0, size = 1;
  MPI_Comm_rank(group_comm, &rank);
  MPI_Comm_size(group_comm, &size);
  std::unique_ptr<Backend> staged = std::make_unique<staged::StagedBackend>(
      std::make_unique<mpi::MpiBackend>(group_comm, max_chunk), rank, size, engine,
      env_bytes("SMP_STAGED_CHUNK_BYTES", staged::kAutoChunk, 8), p2p_host,
      env_bytes("SMP_STAGED_RS_DEVICE_MIN_BYTES", staged::kDeviceReduceMinBytes, 0));
  // Ranks that share one GPU: collectives through CUDA IPC segments (all of
  // them under MPS, those of 2 MiB and more where the processes take turns
  // on the GPU: ipc_backend.h), the staged backend for the rest
  // (SMP_CUDA_IPC=0 turns it off).
  if (const IpcMode mode = ipc_mode(); mode != IpcMode::Off) {
    staged = std::make_unique<ipc::IpcBackend>(
        std::make_unique<mpi::MpiBootstrap>(group_comm, "cuda ipc"), std::make_shared<ipc::CudaIpcMemory>(),
        std::move(staged),
        env_bytes("SMP_IPC_CHUNK_BYTES", ipc::kDefaultChunkBytes, 8 * ipc::kMaxInputs), world_rank,
        mode == IpcMode::Required, env_bytes("SMP_IPC_MIN_BYTES", ipc::kAutoMinBytes, 0));
  }
#if SMP_HAVE_NCCL
  const char *use = std::getenv("SMP_NCCL");
  if (!(use && std::string(use) == "0"))
    return std::make_unique<nccl::NcclBackend>(group_comm, std::move(staged), timeout_seconds,
                                               nccl::real_nccl_api(), world_rank);
#else
  (void)timeout_seconds;
#endif
  return staged;
}

}  // namespace smp::comm
