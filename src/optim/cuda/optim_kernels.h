// Fused optimizer kernels on a device-resident shard: the CUDA twins of
// optim/kernels.h (adamw_update, sgd_update), enqueued on a stream. Same
// operations in the same order in float32 (built with -fmad=false and
// IEEE sqrt/division), so a step matches the CPU kernel to the last bit up
// to the rounding of the half-precision model copy.
//
// nvcc compiles these apart from the optimizer's C++ (src/cuda's
// generator), so the hyperparameters arrive as the float32 coefficients the
// CPU kernels compute (adamw_coef / sgd_coef below mirror
// optim/cpu_kernels.cc; the GPU tests compare the two paths).
// Every pointer is device memory of n elements and aliases nothing else;
// grad and param_out hold `dtype` elements (F32, BF16 or F16); param_out may
// be NULL. `stream` is a cudaStream_t (NULL = default stream).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "common/dtype.h"

namespace smp::cuda {

struct AdamWCoef {
  float gmult, decay, b1, omb1, b2, omb2, bc2_sqrt, eps, neg_step;
};

inline AdamWCoef adamw_coef(double lr, double beta1, double beta2, double eps, double weight_decay,
                            int64_t step, float grad_mult) {
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  return {grad_mult,
          static_cast<float>(1.0 - lr * weight_decay),
          static_cast<float>(beta1),
          static_cast<float>(1.0 - beta1),
          static_cast<float>(beta2),
          static_cast<float>(1.0 - beta2),
          static_cast<float>(std::sqrt(bc2)),
          static_cast<float>(eps),
          static_cast<float>(-(lr / bc1))};
}

struct SgdCoef {
  float gmult, lr, momentum, omd, wd;
  int mode;       // 0: no momentum; 1: first step (buffer = gradient); 2: later steps
  bool nesterov;
};

inline SgdCoef sgd_coef(double lr, double momentum, double dampening, double weight_decay,
                        bool nesterov, int64_t step, float grad_mult) {
  return {grad_mult, static_cast<float>(lr), static_cast<float>(momentum),
          static_cast<float>(1.0 - dampening), static_cast<float>(weight_decay),
          momentum == 0.0 ? 0 : (step <= 1 ? 1 : 2), nesterov};
}

// AdamW step (see optim/kernels.h for the formula).
void adamw_update(float *master, float *exp_avg, float *exp_avg_sq, const void *grad,
                  void *param_out, DType dtype, size_t n, const AdamWCoef &c, void *stream);

// SGD with momentum / dampening / nesterov / L2 weight decay. momentum_buf
// may be NULL when c.mode == 0.
void sgd_update(float *master, float *momentum_buf, const void *grad, void *param_out,
                DType dtype, size_t n, const SgdCoef &c, void *stream);

}  // namespace smp::cuda
