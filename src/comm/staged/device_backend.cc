#include "comm/staged/device_backend.h"

#include <cstdlib>
#include <string>

#include "comm/ipc/cuda_ipc_memory.h"
#include "comm/ipc/ipc_backend.h"
#include "comm/mpi/mpi_backend.h"
#include "comm/mpi/mpi_bootstrap.h"
#include "comm/staged/cuda_copy_engine.h"
#include "comm/staged/staged_backend.h"
#include "common/error.h"
#if SMP_HAVE_NCCL
#include "comm/nccl/nccl_backend.h"
#endif

namespace smp::comm {

namespace {

// A byte count from the environment variable `name`, or `fallback` when it
// is unset or empty.
size_t env_bytes(const char *name, size_t fallback, size_t least) {
  const char *v = std::getenv(name);
  if (!v || !*v) return fallback;
  char *end = nullptr;
  const unsigned long long x = std::strtoull(v, &end, 10);
  if (*end != '\0' || x < least)
    invalid(std::string(name) + "='" + v + "' is not a number of bytes >= " + std::to_string(least));
  return static_cast<size_t>(x);
}

// SMP_CUDA_IPC: unset, empty or "0" off; "1" on; "require" on, and a group
// that cannot use it fails instead of falling back.
enum class IpcMode { Off, On, Required };
IpcMode ipc_mode() {
  const char *v = std::getenv("SMP_CUDA_IPC");
  const std::string s = v ? v : "";
  if (s.empty() || s == "0") return IpcMode::Off;
  if (s == "1") return IpcMode::On;
  if (s == "require") return IpcMode::Required;
  invalid("SMP_CUDA_IPC='" + s + "' is not 0, 1 or require");
}

}  // namespace

std::unique_ptr<Backend> make_device_backend(MPI_Comm group_comm, size_t max_chunk,
                                             double timeout_seconds, int world_rank, Backend *p2p_host) {
  static const auto engine = std::make_shared<staged::CudaCopyEngine>();
  int rank = 0, size = 1;
  MPI_Comm_rank(group_comm, &rank);
  MPI_Comm_size(group_comm, &size);
  std::unique_ptr<Backend> staged = std::make_unique<staged::StagedBackend>(
      std::make_unique<mpi::MpiBackend>(group_comm, max_chunk), rank, size, engine,
      env_bytes("SMP_STAGED_CHUNK_BYTES", staged::kDefaultChunkBytes, 8), p2p_host);
  // Ranks that share one GPU: collectives through CUDA IPC segments, the
  // staged backend for the rest (opt-in until it has run on a GPU).
  if (const IpcMode mode = ipc_mode(); mode != IpcMode::Off) {
    staged = std::make_unique<ipc::IpcBackend>(
        std::make_unique<mpi::MpiBootstrap>(group_comm, "cuda ipc"), std::make_shared<ipc::CudaIpcMemory>(),
        std::move(staged),
        env_bytes("SMP_IPC_CHUNK_BYTES", ipc::kDefaultChunkBytes, 8 * ipc::kMaxInputs), world_rank,
        mode == IpcMode::Required);
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
