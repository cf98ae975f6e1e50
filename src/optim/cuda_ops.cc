// DeviceOps on a CUDA device: cudaMalloc'd memory, cudaMemcpyAsync /
// cudaMemsetAsync on the stream, the kernels through kernels.h's device
// twins. Each call makes the optimizer's device current first (the caller
// may have another one current). Built only with CUDA.
#include "cuda/runtime.h"
#include "optim/device_ops.h"

namespace smp::optim {

namespace {

class CudaOps final : public DeviceOps {
 public:
  explicit CudaOps(int device) : device_(device) {}
  const char *name() const override { return "cuda"; }
  void *alloc(size_t bytes) override {
    cuda::DeviceGuard g(device_);
    return cuda::alloc_device(bytes);
  }
  void free(void *p) noexcept override {
    try {
      cuda::DeviceGuard g(device_);
      cuda::free_device(p);
    } catch (...) {  // no device to switch to: nothing to free on it either
    }
  }
  void copy(void *dst, const void *src, size_t bytes, void *stream) override {
    cuda::DeviceGuard g(device_);
    cuda::memcpy_async(dst, src, bytes, stream);
  }
  void zero(void *p, size_t bytes, void *stream) override {
    cuda::DeviceGuard g(device_);
    cuda::memset_async(p, 0, bytes, stream);
  }
  void synchronize(void *stream) override {
    cuda::DeviceGuard g(device_);
    cuda::stream_synchronize(stream);
  }
  void synchronize_quietly(void *stream) noexcept override {
    try {
      synchronize(stream);
    } catch (...) {  // a failed stream: the caller frees anyway
    }
  }
  void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                    void *param_out, DType dtype, size_t n, float grad_mult, const AdamWHyper &h,
                    void *stream) override {
    cuda::DeviceGuard g(device_);
    device::adamw_update(master, exp_avg, exp_avg_sq, grad, param_out, dtype, n, grad_mult, h, stream);
  }
  void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                  DType dtype, size_t n, float grad_mult, const SgdHyper &h, void *stream) override {
    cuda::DeviceGuard g(device_);
    device::sgd_update(master, momentum_buf, grad, param_out, dtype, n, grad_mult, h, stream);
  }
  size_t sum_squares_scratch() const override { return device::sum_squares_scratch(); }
  void sum_squares(const void *grad, DType dtype, size_t n, double *out, double *scratch,
                   void *stream) override {
    cuda::DeviceGuard g(device_);
    device::sum_squares(grad, dtype, n, out, scratch, stream);
  }
  void to_float(const void *src, DType dtype, float *dst, size_t n, void *stream) override {
    cuda::DeviceGuard g(device_);
    device::to_float(src, dtype, dst, n, stream);
  }
  void from_float(const float *src, void *dst, DType dtype, size_t n, void *stream) override {
    cuda::DeviceGuard g(device_);
    device::from_float(src, dst, dtype, n, stream);
  }

 private:
  int device_;
};

}  // namespace

std::unique_ptr<DeviceOps> make_cuda_ops(int device) { return std::make_unique<CudaOps>(device); }

}  // namespace smp::optim
