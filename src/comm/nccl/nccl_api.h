// The slice of NCCL that communicator creation and health checks use,
// behind an interface so that the creation protocol (nccl_comm.h) runs in a
// CPU unit test with a fake in place of NCCL: two NCCL ranks never run on
// the machines without a GPU. Results are ncclResult_t values as int;
// communicators are opaque pointers.
#pragma once

#include <memory>
#include <string>

namespace smp::comm::nccl {

inline constexpr int kNcclSuccess = 0;     // ncclSuccess
inline constexpr int kNcclInProgress = 7;  // ncclInProgress (non-blocking communicators)
inline constexpr int kUniqueIdBytes = 128; // NCCL_UNIQUE_ID_BYTES

class NcclApi {
 public:
  virtual ~NcclApi() = default;
  virtual int get_unique_id(char id[kUniqueIdBytes]) = 0;
  // Non-blocking creation (config.blocking = 0): may return InProgress, and
  // the communicator's state is then polled with get_async_error.
  virtual int comm_init_rank(void **comm, int nranks, const char id[kUniqueIdBytes], int rank) = 0;
  virtual int get_async_error(void *comm, int *async_error) = 0;
  virtual int comm_abort(void *comm) = 0;
  virtual int comm_destroy(void *comm) = 0;
  virtual std::string error_string(int rc) = 0;
  // Identifies the GPU this process drives (its PCI bus id): NCCL refuses
  // two ranks of one communicator on the same GPU.
  virtual std::string device_key() = 0;
};

#if SMP_HAVE_NCCL
// The real library (nccl_api.cc).
std::unique_ptr<NcclApi> real_nccl_api();
#endif

}  // namespace smp::comm::nccl
