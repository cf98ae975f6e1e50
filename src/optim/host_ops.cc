// DeviceOps over host memory, the step's ops for host tensors: buffers are
// 64-byte aligned allocations, copies are memcpy, kernels are the CPU ones.
// Everything completes at once, so synchronize has nothing to wait for.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "optim/device_ops.h"

namespace smp::optim {

namespace {

class HostOps final : public DeviceOps {
 public:
  const char *name() const override { return "host"; }
  bool host_memory() const override { return true; }
  void *alloc(size_t bytes) override {
    void *p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void free(void *p) noexcept override { std::free(p); }
  void copy(void *dst, const void *src, size_t bytes, void *) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void zero(void *p, size_t bytes, void *) override {
    if (bytes) std::memset(p, 0, bytes);
  }
  void synchronize(void *) override {}
  void synchronize_quietly(void *) noexcept override {}
  // In place through an L1-sized scratch: the kernels are vectorized on
  // the promise that their input and output do not alias.
  bool update_in_place() const override { return true; }
  void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                    void *param_out, DType dtype, size_t n, float grad_mult, const AdamWHyper &h,
                    void *) override {
    chunked(grad, param_out, dtype, n, [&](size_t i, const void *g, void *out, size_t len) {
      optim::adamw_update(master + i, exp_avg + i, exp_avg_sq + i, g, out, dtype, len, grad_mult, h);
    });
  }
  void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                  DType dtype, size_t n, float grad_mult, const SgdHyper &h, void *) override {
    chunked(grad, param_out, dtype, n, [&](size_t i, const void *g, void *out, size_t len) {
      optim::sgd_update(master + i, momentum_buf ? momentum_buf + i : nullptr, g, out, dtype, len, grad_mult, h);
    });
  }
  size_t sum_squares_scratch() const override { return 1; }
  void sum_squares(const void *grad, DType dtype, size_t n, double *out, double *, void *) override {
    *out = optim::sum_squares(grad, dtype, n);
  }
  void to_float(const void *src, DType dtype, float *dst, size_t n, void *) override {
    optim::to_float(src, dtype, dst, n);
  }
  void from_float(const float *src, void *dst, DType dtype, size_t n, void *) override {
    optim::from_float(src, dst, dtype, n);
  }

 private:
  static constexpr size_t kChunk = 4096;  // elements: the scratch stays in L1
  // kernel(i, grad + i, scratch, len) over chunks, each chunk's output then
  // copied to param_out + i (after the kernel has read grad + i).
  template <class Kernel>
  static void chunked(const void *grad, void *param_out, DType dtype, size_t n, Kernel kernel) {
    const size_t ds = dtype_size(dtype);
    alignas(64) unsigned char scratch[kChunk * sizeof(float)];
    for (size_t i = 0; i < n; i += kChunk) {
      const size_t len = std::min(kChunk, n - i);
      kernel(i, static_cast<const char *>(grad) + i * ds, param_out ? scratch : nullptr, len);
      if (param_out) std::memcpy(static_cast<char *>(param_out) + i * ds, scratch, len * ds);
    }
  }
};

}  // namespace

std::unique_ptr<DeviceOps> make_host_ops() { return std::make_unique<HostOps>(); }

}  // namespace smp::optim
