// optim/kernels.h's device twins over the optim/cuda/ kernels: the
// hyperparameters become the float32 coefficients the CPU kernels use
// (cuda::adamw_coef / sgd_coef mirror optim/cpu_kernels.cc), so a device
// step rounds like a host one. Built only with CUDA.
#include "optim/cuda/convert_kernels.h"
#include "optim/cuda/norm_kernels.h"
#include "optim/cuda/optim_kernels.h"
#include "optim/kernels.h"

namespace smp::optim::device {

void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                  void *param_out, DType dtype, size_t n, float grad_mult, const AdamWHyper &h,
                  void *stream) {
  const cuda::AdamWCoef c =
      cuda::adamw_coef(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step, grad_mult);
  cuda::adamw_update(master, exp_avg, exp_avg_sq, grad, param_out, dtype, n, c, stream);
}

void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                DType dtype, size_t n, float grad_mult, const SgdHyper &h, void *stream) {
  const cuda::SgdCoef c = cuda::sgd_coef(h.lr, h.momentum, h.dampening, h.weight_decay,
                                         h.nesterov, h.step, grad_mult);
  cuda::sgd_update(master, momentum_buf, grad, param_out, dtype, n, c, stream);
}

size_t sum_squares_scratch() { return cuda::kSumSquaresBlocks; }

void sum_squares(const void *grad, DType dtype, size_t n, double *out, double *scratch,
                 void *stream) {
  cuda::sum_squares(grad, dtype, n, out, scratch, stream);
}

void to_float(const void *src, DType dtype, float *dst, size_t n, void *stream) {
  cuda::to_float(src, dtype, dst, n, stream);
}

void from_float(const float *src, void *dst, DType dtype, size_t n, void *stream) {
  cuda::from_float(src, dst, dtype, n, stream);
}

}  // namespace smp::optim::device
