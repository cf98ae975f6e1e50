#include "comm/ipc/cuda_ipc_memory.h"

#include <cuda_runtime_api.h>
#include <unistd.h>

#include <cstring>
#include <exception>

#include "common/error.h"
#include "cuda/reduce_many.h"
#include "cuda/runtime.h"

namespace smp::comm::ipc {

static_assert(kMaxInputs <= cuda::kReduceManyMaxInputs, "reduce() must accept every group reduce_many takes");
static_assert(sizeof(cudaIpcMemHandle_t) == 64, "the handle travels as its 64 raw bytes");

namespace {

std::string host_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '?';
  return host;
}

// Sets *error to "<what>: <CUDA error text>" and clears the thread's last
// error, so that the failure does not resurface in a later cudaGetLastError.
void report(std::string *error, const std::string &what, cudaError_t rc) {
  (void)cudaGetLastError();
  *error = what + ": " + cuda::error_string(rc);
}

}  // namespace

std::string CudaIpcMemory::key(const void *probe) {
  const std::string host = host_name();
  const int dev = cuda::device_of(probe);
  // Without a device to name, a key no other process has: a group of one,
  // never a group whose members cannot map each other's memory.
  const std::string mine = "/pid-" + std::to_string(static_cast<long>(getpid()));
  if (dev < 0) return host + "/not-device-memory" + mine;
  char bus[64] = {};
  const cudaError_t rc = cudaDeviceGetPCIBusId(bus, sizeof bus, dev);
  if (rc != cudaSuccess) {
    (void)cudaGetLastError();
    return host + "/unknown-device-" + std::to_string(dev) + mine;
  }
  return host + "/" + bus;
}

void *CudaIpcMemory::allocate(size_t bytes, const void *probe, std::string *handle, std::string *error) {
  const int dev = cuda::device_of(probe);
  if (dev < 0) {
    *error = "cuda ipc: the buffer is not CUDA device memory";
    return nullptr;
  }
  try {
    cuda::DeviceGuard on(dev);
    void *p = nullptr;
    cudaError_t rc = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (rc != cudaSuccess) {
      report(error, "cudaMalloc(" + std::to_string(bytes) + " bytes)", rc);
      return nullptr;
    }
    cudaIpcMemHandle_t h;
    rc = cudaIpcGetMemHandle(&h, p);
    if (rc != cudaSuccess) {
      report(error, "cudaIpcGetMemHandle", rc);
      (void)cudaFree(p);
      (void)cudaGetLastError();
      return nullptr;
    }
    handle->assign(reinterpret_cast<const char *>(&h), sizeof h);
    device_.store(dev);
    return p;
  } catch (const std::exception &e) {  // DeviceGuard's cudaSetDevice failed
    *error = std::string("cuda ipc: ") + e.what();
    (void)cudaGetLastError();
    return nullptr;
  }
}

void CudaIpcMemory::release(void *segment) noexcept {
  if (segment == nullptr) return;
  try {
    cuda::DeviceGuard on(device_.load());
    (void)cudaFree(segment);
  } catch (const std::exception &) {
    // Nothing to report from a noexcept release; the segment leaks.
  }
  (void)cudaGetLastError();
}

const void *CudaIpcMemory::open(const std::string &handle, std::string *error) {
  cudaIpcMemHandle_t h;
  if (handle.size() != sizeof h) {
    *error = "cuda ipc: a handle of " + std::to_string(handle.size()) + " bytes (a cudaIpcMemHandle_t has " +
             std::to_string(sizeof h) + ")";
    return nullptr;
  }
  const int dev = device_.load();
  if (dev < 0) {
    *error = "cuda ipc: open() before allocate() chose the device";
    return nullptr;
  }
  std::memcpy(&h, handle.data(), sizeof h);
  try {
    cuda::DeviceGuard on(dev);
    void *p = nullptr;
    // Lazy peer access: a segment on another GPU is mapped through peer
    // access where the devices allow it; on the same GPU the flag is moot.
    const cudaError_t rc = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess);
    if (rc != cudaSuccess) {
      report(error, "cudaIpcOpenMemHandle", rc);
      return nullptr;
    }
    return p;
  } catch (const std::exception &e) {
    *error = std::string("cuda ipc: ") + e.what();
    (void)cudaGetLastError();
    return nullptr;
  }
}

void CudaIpcMemory::close(const void *mapped) noexcept {
  if (mapped == nullptr) return;
  try {
    cuda::DeviceGuard on(device_.load());
    (void)cudaIpcCloseMemHandle(const_cast<void *>(mapped));
  } catch (const std::exception &) {
    // Nothing to report from a noexcept close; the mapping stays.
  }
  (void)cudaGetLastError();
}

void CudaIpcMemory::copy(void *dst, const void *src, size_t bytes, void *stream) {
  if (bytes == 0) return;
  cuda::DeviceGuard on(device_.load());
  cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)),
              "cuda ipc: cudaMemcpyAsync");
}

void CudaIpcMemory::reduce(void *out, const void *const *ins, int n, size_t count, DType t, ReduceOp op,
                           int group_size, void *stream) {
  cuda::DeviceGuard on(device_.load());
  cuda::reduce_many(out, ins, n, count, t, static_cast<int>(op), group_size, stream);
}

void CudaIpcMemory::synchronize(void *stream) {
  cuda::DeviceGuard on(device_.load());
  cuda::check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cuda ipc: cudaStreamSynchronize");
}

}  // namespace smp::comm::ipc
