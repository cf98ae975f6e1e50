// DeviceOps over host memory: "device" buffers are 64-byte aligned host
// allocations, copies are memcpy, kernels are the CPU ones. Everything
// completes at once, so synchronize has nothing to wait for.
#include <cstdlib>
#include <cstring>
#include <new>

#include "optim/device_ops.h"

namespace smp::optim {

namespace {

class HostOps final : public DeviceOps {
 public:
  const char *name() const override { return "host"; }
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
  void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                    void *param_out, DType dtype, size_t n, float grad_mult, const AdamWHyper &h,
                    void *) override {
    optim::adamw_update(master, exp_avg, exp_avg_sq, grad, param_out, dtype, n, grad_mult, h);
  }
  void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                  DType dtype, size_t n, float grad_mult, const SgdHyper &h, void *) override {
    optim::sgd_update(master, momentum_buf, grad, param_out, dtype, n, grad_mult, h);
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
};

}  // namespace

std::unique_ptr<DeviceOps> make_host_ops() { return std::make_unique<HostOps>(); }

}  // namespace smp::optim
