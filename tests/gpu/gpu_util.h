// Shared by the GPU tests: the skip rule (exit 77, Meson's "skipped", when
// no GPU is visible; decided before MPI starts, so every rank agrees),
// CUDA checks that abort with the call and its error, device buffers, and
// random data drawn fresh on every run (the seed is printed to replay one).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace gpu_test {

inline void skip_without_gpu(const char *test) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("%s: no GPU visible: skipped\n", test);
    std::exit(77);
  }
}

#define GPU_CHECK(call)                                                                  \
  do {                                                                                   \
    const cudaError_t e_ = (call);                                                       \
    if (e_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// Device memory of `bytes`, freed on scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) { GPU_CHECK(cudaMalloc(&p_, bytes ? bytes : 1)); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  void *get() const { return p_; }
  template <class T> T *as() const { return static_cast<T *>(p_); }
  size_t bytes() const { return bytes_; }
  void upload(const void *host) { GPU_CHECK(cudaMemcpy(p_, host, bytes_, cudaMemcpyHostToDevice)); }
  // In the order of `stream` (cudaMemcpy and cudaMemset run on the legacy
  // default stream, which a cudaStreamNonBlocking stream does not wait for).
  void upload(const void *host, cudaStream_t stream) {
    GPU_CHECK(cudaMemcpyAsync(p_, host, bytes_, cudaMemcpyHostToDevice, stream));
  }
  void poison(cudaStream_t stream) { GPU_CHECK(cudaMemsetAsync(p_, 0xff, bytes_, stream)); }
  void download(void *host) const { GPU_CHECK(cudaMemcpy(host, p_, bytes_, cudaMemcpyDeviceToHost)); }
  // Outputs are poisoned before every run: all bytes 0xff (NaN for floats,
  // -1 for integers), so a result that was never written cannot pass.
  void poison() { GPU_CHECK(cudaMemset(p_, 0xff, bytes_)); }

 private:
  void *p_ = nullptr;
  size_t bytes_;
};

inline uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace gpu_test
