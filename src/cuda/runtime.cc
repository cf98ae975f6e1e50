#include "cuda/runtime.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <mutex>

#include "common/error.h"

namespace smp::cuda {

int device_count() {
  static std::once_flag once;
  static int count = 0;
  std::call_once(once, [] {
    int n = 0;
    // No driver / no device is not an error here: it means "host only".
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      n = 0;
      (void)cudaGetLastError();  // clear the sticky-free error state
    }
    count = n;
  });
  return count;
}

bool is_device_pointer(const void *p) {
  if (p == nullptr || device_count() == 0) return false;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();  // an unknown pointer is plain host memory
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

std::string error_string(int rc) {
  const auto e = static_cast<cudaError_t>(rc);
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

void check(int rc, const char *what) {
  if (rc != cudaSuccess) fail(Status::Backend, std::string(what) + ": CUDA error " + error_string(rc));
}

void *alloc_pinned(size_t bytes) {
  void *p = nullptr;
  check(cudaMallocHost(&p, bytes == 0 ? 1 : bytes), "cudaMallocHost");
  return p;
}

void free_pinned(void *p) noexcept {
  if (p) (void)cudaFreeHost(p);
}

void *alloc_device(size_t bytes) {
  void *p = nullptr;
  check(cudaMalloc(&p, bytes == 0 ? 1 : bytes), "cudaMalloc");
  return p;
}

void free_device(void *p) noexcept {
  if (p) (void)cudaFree(p);
}

void memcpy_async(void *dst, const void *src, size_t bytes, void *stream) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)),
        "cudaMemcpyAsync");
}

void memset_async(void *p, int value, size_t bytes, void *stream) {
  if (bytes == 0) return;
  check(cudaMemsetAsync(p, value, bytes, static_cast<cudaStream_t>(stream)), "cudaMemsetAsync");
}

void stream_synchronize(void *stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

int device_of(const void *p) {
  if (p == nullptr || device_count() == 0) return -1;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged ? a.device : -1;
}

DeviceGuard::DeviceGuard(int device) {
  if (device < 0) return;
  int cur = -1;
  check(cudaGetDevice(&cur), "cudaGetDevice");
  if (cur == device) return;
  check(cudaSetDevice(device), "cudaSetDevice");
  previous_ = cur;
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) (void)cudaSetDevice(previous_);
}

namespace detail {

int sm_count() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];  // 0 = not asked yet
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev < 0 || dev >= kMaxDevices) return 80;
  int n = cache[dev].load(std::memory_order_relaxed);
  if (n == 0) {
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
    cache[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

}  // namespace detail

}  // namespace smp::cuda
