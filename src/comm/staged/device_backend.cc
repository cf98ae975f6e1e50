#include "comm/staged/device_backend.h"

#include <cstdlib>
#include <string>

#include "comm/mpi/mpi_backend.h"
#include "comm/staged/cuda_copy_engine.h"
#include "comm/staged/staged_backend.h"
#include "common/error.h"
#if SMP_HAVE_NCCL
#include "comm/nccl/nccl_backend.h"
#endif

namespace smp::comm {

namespace {

size_t staged_chunk_bytes() {
  const char *v = std::getenv("SMP_STAGED_CHUNK_BYTES");
  if (!v || !*v) return staged::kDefaultChunkBytes;
  char *end = nullptr;
  const unsigned long long x = std::strtoull(v, &end, 10);
  if (*end != '\0' || x < 8)
    invalid(std::string("SMP_STAGED_CHUNK_BYTES='") + v + "' is not a number of bytes >= 8");
  return static_cast<size_t>(x);
}

}  // namespace

std::unique_ptr<Backend> make_device_backend(MPI_Comm group_comm, size_t max_chunk,
                                             double timeout_seconds, int world_rank, Backend *p2p_host) {
  static const auto engine = std::make_shared<staged::CudaCopyEngine>();
  int rank = 0, size = 1;
  MPI_Comm_rank(group_comm, &rank);
  MPI_Comm_size(group_comm, &size);
  auto staged = std::make_unique<staged::StagedBackend>(
      std::make_unique<mpi::MpiBackend>(group_comm, max_chunk), rank, size, engine, staged_chunk_bytes(),
      p2p_host);
#if SMP_HAVE_NCCL
  const char *use = std::getenv("SMP_NCCL");
  if (!(use && std::string(use) == "0"))
    return std::make_unique<nccl::NcclBackend>(group_comm, std::move(staged), timeout_seconds,
                                               nccl::real_nccl_api(), world_rank);
#else
  (void)timeout_seconds;
  (void)world_rank;
#endif
  return staged;
}

}  // namespace smp::comm
