// The few CUDA runtime services the layers above need, with no CUDA types
// in the interface (streams travel as void *, as in smp.h), so that comm/
// and optim/ compile without CUDA headers. Built only when CUDA is found
// (SMP_HAVE_CUDA); every function throws smp::Error(Status::Backend) with
// the CUDA error string when the runtime fails.
#pragma once

#include <cstddef>
#include <string>

namespace smp::cuda {

// Devices visible to this process; 0 when there is no driver or no GPU.
// Asked once (cudaGetDeviceCount) and remembered, so that classifying host
// pointers on a machine without a GPU never creates a CUDA context.
int device_count();

// True when p is device (or managed) memory that CUDA knows. Host, pinned
// host and unknown pointers are host memory. Never touches CUDA when
// device_count() is 0.
bool is_device_pointer(const void *p);

// Throws smp::Error(Status::Backend, "<what>: <CUDA error text>") unless
// rc (a cudaError_t) is cudaSuccess.
void check(int rc, const char *what);
std::string error_string(int rc);

// Page-locked host memory (cudaMallocHost): DMA-able, so device<->host
// copies from it are asynchronous.
void *alloc_pinned(size_t bytes);
void free_pinned(void *p) noexcept;

// Blocks until all work on `stream` (a cudaStream_t; NULL = default) is done.
void stream_synchronize(void *stream);

// Device memory (cudaMalloc / cudaFree) of the current device.
void *alloc_device(size_t bytes);
void free_device(void *p) noexcept;

// bytes from src to dst (host or device, either way: cudaMemcpyDefault),
// and bytes of p set to `value`, enqueued on `stream`. With pageable host
// memory the copy is complete when it returns (CUDA stages it).
void memcpy_async(void *dst, const void *src, size_t bytes, void *stream);
void memset_async(void *p, int value, size_t bytes, void *stream);

// The device that owns device pointer p; -1 for host or unknown memory.
int device_of(const void *p);

// Makes `device` current on this thread for the guard's lifetime (no-op for
// -1 or the current device). smp's worker thread starts on device 0, so
// work on a caller's buffers selects their device first.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard &) = delete;
  DeviceGuard &operator=(const DeviceGuard &) = delete;

 private:
  int previous_ = -1;
};

namespace detail {
inline bool aligned(const void *p, size_t bytes) {
  return reinterpret_cast<unsigned long long>(p) % bytes == 0;
}
int sm_count();  // multiprocessors of the current device, asked once per device
}  // namespace detail

}  // namespace smp::cuda
