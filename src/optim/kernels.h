// Fused optimizer kernels on one rank's shard: float32 master weights and
// moments, gradients and the model copy in F32, BF16 or F16. The interface
// is pointers + counts + hyperparameters only; the CUDA twins (namespace
// device, below) take the same arguments plus a stream. All pointers may
// alias nothing else; n may be 0.
//
// Arithmetic follows torch.optim (1.13, single-tensor path) operation by
// operation, in float32 with float32 coefficients, without FMA contraction,
// so results match a scalar reference to the last bit and torch to within
// float32 rounding.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace smp::optim {

struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  int64_t step = 1;  // the step being taken, >= 1 (bias correction uses it)
};

struct SgdHyper {
  double lr = 1e-2, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  int64_t step = 1;  // step 1 initializes the momentum buffer to the gradient
};

// AdamW (decoupled weight decay, bias correction), as torch.optim.AdamW:
//   g = grad * grad_mult;  p *= 1 - lr*wd
//   m = b1*m + (1-b1)*g;   v = b2*v + (1-b2)*g*g
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
// grad_mult folds in 1/loss_scale and the clipping coefficient.
// param_out: NULL, or n elements of `dtype` receiving the new master
// rounded to nearest even (the model copy).
void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                  void *param_out, DType dtype, size_t n, float grad_mult, const AdamWHyper &h);

// SGD with momentum, dampening, nesterov and L2 weight decay, as
// torch.optim.SGD. momentum_buf may be NULL when h.momentum == 0.
void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                DType dtype, size_t n, float grad_mult, const SgdHyper &h);

// Sum of squares of the n gradients, accumulated in double. Any inf or NaN
// among them makes the result non-finite (the loss-scaling overflow test).
double sum_squares(const void *grad, DType dtype, size_t n);

// n elements of `dtype` <-> float32 (round to nearest even on the way down).
void to_float(const void *src, DType dtype, float *dst, size_t n);
void from_float(const float *src, void *dst, DType dtype, size_t n);

#if SMP_HAVE_CUDA
// The same kernels on device memory, enqueued on `stream` (a cudaStream_t,
// NULL = the default stream): optim/device_kernels.cc over optim/cuda/. Built
// only with CUDA; the sharded optimizer calls them when its tensors are in
// CUDA memory, so the optimizer reaches the GPU through this interface
// alone for its arithmetic.
namespace device {
void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                  void *param_out, DType dtype, size_t n, float grad_mult, const AdamWHyper &h,
                  void *stream);
void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                DType dtype, size_t n, float grad_mult, const SgdHyper &h, void *stream);
// *out (device memory) = the sum of squares, in double; scratch: device
// memory of sum_squares_scratch() doubles, reusable by calls on one stream.
size_t sum_squares_scratch();
void sum_squares(const void *grad, DType dtype, size_t n, double *out, double *scratch,
                 void *stream);
void to_float(const void *src, DType dtype, float *dst, size_t n, void *stream);
void from_float(const float *src, void *dst, DType dtype, size_t n, void *stream);
}  // namespace device
#endif

}  // namespace smp::optim
