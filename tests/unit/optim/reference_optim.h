// Plain scalar optimizers for the tests: one element at a time, float32, in
// the order torch.optim's single-tensor code applies the operations. An
// independent reference for the fused kernels and the sharded step.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace smp::optim::testing {

struct RefAdamW {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  std::vector<float> m, v;
  int64_t t = 0;

  // p and g: one tensor (or the whole model), g already averaged/scaled.
  void step(std::vector<float> &p, const std::vector<float> &g) {
    if (m.empty()) m.assign(p.size(), 0.0f), v.assign(p.size(), 0.0f);
    ++t;
    const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(t));
    const float decay = static_cast<float>(1.0 - lr * weight_decay);
    const float step_size = static_cast<float>(lr / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    for (size_t i = 0; i < p.size(); ++i) {
      p[i] = p[i] * decay;
      m[i] = m[i] * static_cast<float>(beta1) + static_cast<float>(1.0 - beta1) * g[i];
      v[i] = v[i] * static_cast<float>(beta2) + static_cast<float>(1.0 - beta2) * g[i] * g[i];
      const float denom = std::sqrt(v[i]) / bc2_sqrt + static_cast<float>(eps);
      p[i] = p[i] + (-step_size) * m[i] / denom;
    }
  }
};

struct RefSgd {
  double lr = 1e-2, momentum = 0.9, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  std::vector<float> buf;
  int64_t t = 0;

  void step(std::vector<float> &p, const std::vector<float> &g) {
    ++t;
    if (momentum != 0 && buf.empty()) buf.assign(p.size(), 0.0f);
    for (size_t i = 0; i < p.size(); ++i) {
      float d = g[i] + static_cast<float>(weight_decay) * p[i];
      if (momentum != 0) {
        if (t == 1)
          buf[i] = d;
        else
          buf[i] = buf[i] * static_cast<float>(momentum) + static_cast<float>(1.0 - dampening) * d;
        d = nesterov ? d + static_cast<float>(momentum) * buf[i] : buf[i];
      }
      p[i] = p[i] + -static_cast<float>(lr) * d;
    }
  }
};

// |a - b| <= rel * max(|b|, floor): relative, with a floor for values near 0.
inline bool close_rel(double a, double b, double rel, double floor = 1e-30) {
  return std::fabs(a - b) <= rel * std::fmax(std::fabs(b), floor);
}

}  // namespace smp::optim::testing
