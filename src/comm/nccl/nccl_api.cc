// The real NCCL behind NcclApi. Communicators are created non-blocking
// (config.blocking = 0) so that creation and every operation can be
// polled, and aborted on a hang.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <unistd.h>

#include <cstring>

#include "comm/nccl/nccl_api.h"

namespace smp::comm::nccl {

namespace {

class RealNccl final : public NcclApi {
 public:
  int get_unique_id(char id[kUniqueIdBytes]) override {
    ncclUniqueId u;
    const ncclResult_t rc = ncclGetUniqueId(&u);
    std::memcpy(id, u.internal, kUniqueIdBytes);
    return rc;
  }
  int comm_init_rank(void **comm, int nranks, const char id[kUniqueIdBytes], int rank) override {
    ncclUniqueId u;
    std::memcpy(u.internal, id, kUniqueIdBytes);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t c = nullptr;
    const ncclResult_t rc = ncclCommInitRankConfig(&c, nranks, u, rank, &config);
    *comm = c;
    return rc;
  }
  int get_async_error(void *comm, int *async_error) override {
    ncclResult_t e = ncclSuccess;
    const ncclResult_t rc = ncclCommGetAsyncError(static_cast<ncclComm_t>(comm), &e);
    *async_error = e;
    return rc;
  }
  int comm_abort(void *comm) override { return ncclCommAbort(static_cast<ncclComm_t>(comm)); }
  int comm_destroy(void *comm) override {
    // Finalize flushes outstanding work; with a non-blocking communicator
    // it may be in progress, so poll it before destroying.
    auto c = static_cast<ncclComm_t>(comm);
    ncclResult_t rc = ncclCommFinalize(c);
    ncclResult_t state = rc;
    while (state == ncclInProgress) {
      if (ncclCommGetAsyncError(c, &state) != ncclSuccess) break;
    }
    return ncclCommDestroy(c);
  }
  std::string error_string(int rc) override {
    return std::string(ncclGetErrorString(static_cast<ncclResult_t>(rc))) + " (" + std::to_string(rc) + ")";
  }
  // Host name and PCI bus id: bus ids repeat across hosts.
  std::string device_key() override {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '?';
    int dev = 0;
    char bus[64] = {};
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetPCIBusId(bus, sizeof bus, dev) != cudaSuccess) {
      (void)cudaGetLastError();
      return std::string(host) + "/unknown-device-" + std::to_string(dev);
    }
    return std::string(host) + "/" + bus;
  }
};

}  // namespace

std::unique_ptr<NcclApi> real_nccl_api() { return std::make_unique<RealNccl>(); }

}  // namespace smp::comm::nccl
