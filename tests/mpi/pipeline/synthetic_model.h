// The synthetic model the pipeline tests run: V = pp * chunks virtual
// stages, each y = tanh(a * x + b) per feature (a, b: H-vectors, distinct per
// virtual stage), on microbatches of varying length (rows of H features), a
// loss of 0.5 * sum(y^2) at the end. Forward, backward and a one-process
// reference of the whole step, so the pipelined run can be compared with
// the same arithmetic done in order.
#pragma once

#include <cmath>
#include <vector>

namespace synthetic {

constexpr int H = 8;

inline int rows(int mb) { return 1 + (mb * 5 + 3) % 6; }  // varies: the header carries it

inline float param_a(int vs, int h) { return 0.6f + 0.05f * static_cast<float>((vs * 7 + h * 3) % 11); }
inline float param_b(int vs, int h) { return -0.2f + 0.03f * static_cast<float>((vs * 5 + h) % 13); }

inline std::vector<float> input(int mb) {
  std::vector<float> x(static_cast<size_t>(rows(mb)) * H);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i) + 1.3f * static_cast<float>(mb));
  return x;
}

inline std::vector<float> forward(int vs, const std::vector<float> &x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const int h = static_cast<int>(i % H);
    y[i] = std::tanh(param_a(vs, h) * x[i] + param_b(vs, h));
  }
  return y;
}

inline float loss(const std::vector<float> &y) {
  float s = 0;
  for (float v : y) s += 0.5f * v * v;
  return s;
}

struct Grads {
  std::vector<float> input;  // d loss / d x
  std::vector<float> a, b;   // this microbatch's parameter gradients (H each)
};

inline Grads backward(int vs, const std::vector<float> &x, const std::vector<float> &y,
                      const std::vector<float> &gy) {
  Grads g;
  g.input.resize(x.size());
  g.a.assign(H, 0.0f);
  g.b.assign(H, 0.0f);
  for (size_t i = 0; i < x.size(); ++i) {
    const int h = static_cast<int>(i % H);
    const float dz = gy[i] * (1.0f - y[i] * y[i]);
    g.input[i] = dz * param_a(vs, h);
    g.a[h] += dz * x[i];
    g.b[h] += dz;
  }
  return g;
}

// The whole step in one process, microbatch by microbatch.
struct Reference {
  std::vector<float> losses;                          // [mb]
  std::vector<std::vector<float>> input_grads;        // [mb]
  std::vector<std::vector<std::vector<float>>> ga, gb;  // [vs][mb][H]
};

inline Reference reference(int vstages, int microbatches) {
  Reference r;
  r.ga.assign(vstages, std::vector<std::vector<float>>(microbatches));
  r.gb = r.ga;
  for (int mb = 0; mb < microbatches; ++mb) {
    std::vector<std::vector<float>> xs{input(mb)}, ys;
    for (int vs = 0; vs < vstages; ++vs) {
      ys.push_back(forward(vs, xs.back()));
      xs.push_back(ys.back());
    }
    r.losses.push_back(loss(ys.back()));
    std::vector<float> g = ys.back();
    for (int vs = vstages - 1; vs >= 0; --vs) {
      Grads gr = backward(vs, xs[vs], ys[vs], g);
      r.ga[vs][mb] = gr.a;
      r.gb[vs][mb] = gr.b;
      g = gr.input;
    }
    r.input_grads.push_back(g);
  }
  return r;
}

}  // namespace synthetic
