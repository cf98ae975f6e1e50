// What the sharded optimizer's step needs from the memory it runs in:
// allocations, copies and fills in stream order, a stream synchronize, and
// kernels.h's kernels. Two implementations: CUDA (cuda_ops.cc, over
// optim/cuda/ through kernels.h's device twins; CUDA builds only) and host
// memory (host_ops.cc: memcpy and the CPU kernels), so host and CUDA
// tensors take the same step (sharded_step.cc).
#pragma once

#include <cstddef>
#include <memory>

#include "common/dtype.h"
#include "optim/kernels.h"

namespace smp::optim {

class DeviceOps {
 public:
  virtual ~DeviceOps() = default;
  virtual const char *name() const = 0;
  // alloc() returns memory the program may read directly (the host's).
  virtual bool host_memory() const { return false; }
  // adamw_update / sgd_update accept param_out == grad (same dtype, same
  // elements): the step then updates in place.
  virtual bool update_in_place() const { return false; }
  virtual void *alloc(size_t bytes) = 0;  // zero bytes allowed
  virtual void free(void *p) noexcept = 0;
  // bytes from src to dst (device or host memory, either way), and bytes
  // of p set to zero, in stream order.
  virtual void copy(void *dst, const void *src, size_t bytes, void *stream) = 0;
  virtual void zero(void *p, size_t bytes, void *stream) = 0;
  // Blocks until everything enqueued on stream is done (noexcept variant
  // for destructors).
  virtual void synchronize(void *stream) = 0;
  virtual void synchronize_quietly(void *stream) noexcept = 0;

  // kernels.h's kernels on device memory, in stream order.
  virtual void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                            void *param_out, DType dtype, size_t n, float grad_mult,
                            const AdamWHyper &h, void *stream) = 0;
  virtual void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                          DType dtype, size_t n, float grad_mult, const SgdHyper &h,
                          void *stream) = 0;
  // *out (device memory) = sum of squares in double; scratch: device memory
  // of sum_squares_scratch() doubles.
  virtual size_t sum_squares_scratch() const = 0;
  virtual void sum_squares(const void *grad, DType dtype, size_t n, double *out, double *scratch,
                           void *stream) = 0;
  virtual void to_float(const void *src, DType dtype, float *dst, size_t n, void *stream) = 0;
  virtual void from_float(const float *src, void *dst, DType dtype, size_t n, void *stream) = 0;
};

// Host memory.
std::unique_ptr<DeviceOps> make_host_ops();
#if SMP_HAVE_CUDA
// CUDA device `device`: every call runs with that device current.
std::unique_ptr<DeviceOps> make_cuda_ops(int device);
#endif

}  // namespace smp::optim
